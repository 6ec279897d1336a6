"""What a fresh publication does to serving: with ``serving.mode: labels`` and a ``publish_label``, the
new version gets that label (two-phase, like any move), recorded as done by the publish run.

``stable`` with ``serving.approval: true`` is never moved here: a person approves that move (the promote
DAG or ``exportflow serving promote``). Mode ``latest`` writes nothing, as before. A multi-graph set is
published without a label (labels are refused for sets; see ``control``), with a warning. A rerun of a
publication that already got its label once does not move the label back to it.
"""

from __future__ import annotations

import logging

from components.config.schema import PipelineConfig
from components.ledger.label_history import LabelMove
from components.serving.availability import AvailabilityWait
from components.serving.errors import MultiGraphSet

log = logging.getLogger(__name__)
PUBLISHER = "exportflow publish"
APPROVED_LABEL = "stable"


def label_fresh_version(
    config: PipelineConfig,
    servable: str,
    version: str,
    *,
    run_id: str | None = None,
    wait: AvailabilityWait | None = None,
) -> LabelMove | None:
    """Give the just-published ``version`` the configured ``publish_label``; None when nothing moves."""
    from components.serving import control

    serving = config.serving
    if serving.mode != "labels" or serving.publish_label is None:
        return None
    if serving.publish_label == APPROVED_LABEL and serving.approval:
        log.info("%s version %s published; moving %s waits for approval", servable, version, APPROVED_LABEL)
        return None
    target = control.target_for(config)
    if any(m.to_version == int(version) for m in target.history.load().moves_of(servable, serving.publish_label)):
        return None  # a rerun: it got the label once; later moves were someone's decision, keep them
    try:
        return control.promote(
            config,
            int(version),
            serving.publish_label,
            servable=servable,
            who=PUBLISHER,
            run_id=run_id,
            reason=f"published version {version}",
            wait=wait,
        )
    except MultiGraphSet as exc:  # published all the same; only the label is left out
        log.warning("%s version %s published without the label %s: %s", servable, version, serving.publish_label, exc)
        return None
