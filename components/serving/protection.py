"""Which versions retention must keep for serving (labelled, listed in the model server config, or a
label's rollback target: the version it held before its current one), and retention run with them.

Serving sits above publish: it labels and serves published versions, so it reads publish's layout and
markers. Publish's retention (``components.publish.retention``) only takes the versions to keep as a
parameter; the two entry points that need both, ``retire_old_versions`` after a publish and
``retention_for_config`` for ``exportflow retention``, live here.
"""

from __future__ import annotations

import logging

from components.config.schema import PipelineConfig
from components.ledger.errors import LedgerError
from components.publish.errors import PublishError
from components.publish.retention import RetentionReport, policy_for, prune_published_versions, servables_of
from components.serving.errors import ServingError
from components.storage import StorageError

log = logging.getLogger(__name__)


def serving_needs(config: PipelineConfig, servable: str) -> dict[str, str]:
    """Version -> why serving needs it. Read whatever the mode: a config written while the model was in
    ``labels`` mode still protects its versions. A malformed config raises ``MalformedServingConfig``
    (then retention deletes nothing)."""
    from components.serving.control import current_entry, target_for

    target = target_for(config)
    needs: dict[int, list[str]] = {}
    entry = current_entry(target, servable)
    if entry is not None:
        for label, version in sorted(entry.labels.items()):
            needs.setdefault(version, []).append(f"label {label}")
        for version in entry.versions:
            needs.setdefault(version, []).append("listed in the model server config")
    try:
        history = target.history.load()
    except LedgerError as exc:
        raise ServingError(f"cannot tell which versions serving needs: {exc}") from exc
    for label in history.labels_of(servable):
        back = history.rollback_target(servable, label)
        if back is not None:
            needs.setdefault(back, []).append(f"rollback target of {label}")
    for version in history.pinned(servable):
        needs.setdefault(version, []).append("pinned for serving")
    return {str(v): "serving: " + ", ".join(reasons) for v, reasons in needs.items()}


def retention_for_config(config: PipelineConfig, *, dry_run: bool = False) -> list[RetentionReport]:
    """Apply (or with ``dry_run`` only plan) retention for every servable the config publishes."""
    from components.model_storage import destination_storage

    storage = destination_storage(config.destination)
    policy = policy_for(config)
    try:
        return [
            prune_published_versions(
                storage, config.destination.uri, servable, policy, dry_run=dry_run,
                serving=serving_needs(config, servable),
            )
            for servable in servables_of(config)
        ]
    except ServingError as exc:
        raise PublishError(f"retention at {config.destination.uri} deleted nothing: {exc}") from exc
    except StorageError as exc:
        raise PublishError(f"retention at {config.destination.uri} failed: {exc}") from exc


def retire_old_versions(config: PipelineConfig, servable: str) -> RetentionReport | None:
    """Retention after a publish: a failure here is logged, never fails the publish."""
    from components.model_storage import destination_storage

    try:
        report = prune_published_versions(
            destination_storage(config.destination), config.destination.uri, servable, policy_for(config),
            serving=serving_needs(config, servable),
        )
    except (PublishError, ServingError, StorageError) as exc:
        log.warning("retention of %s/%s skipped: %s", config.destination.uri, servable, exc)
        return None
    return report
