"""TFX artifacts as exportflow's artifacts: which version a Model becomes, and its blessing.

exportflow names a version by the checkpoint's global step, so a rerun finds its own earlier work. A TFX
Model carries no step, so the version comes from, in order:

* the Model's int custom property ``step`` (and string property ``checkpoint``, the source the step
  belongs to), set by a trainer or importer that knows them: re-running that producer gives the same
  version, and the rerun publishes nothing new;
* otherwise the Model artifact's MLMD id (an integer that grows with every new Model in the store) and
  its URI: the same Model artifact always gets the same version.

The blessing is TFX's: ``blessed == 1`` on the ModelBlessing (and the InfraBlessing when given), read as
TFX's Pusher reads it. Metrics are the blessing's float custom properties. Reasons name the artifact type,
never its URI, so a re-run producer yields the very same manifest.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from components.artifacts import CheckpointArtifact, EvaluationArtifact, ThresholdResult
from exportflow_tfx.errors import TfxPushError

STEP_PROPERTY = "step"
CHECKPOINT_PROPERTY = "checkpoint"
BLESSED_PROPERTY = "blessed"


@dataclasses.dataclass(frozen=True)
class ModelSource:
    """Where a TFX Model came from, as exportflow's ledger and manifest name a source."""

    step: int
    checkpoint: str  # the producer's source, or the Model artifact's URI


def source_of(model: Any) -> ModelSource:
    """The step and source of a TFX Model artifact (see the module docstring for the rule)."""
    if model.has_custom_property(STEP_PROPERTY):
        step = model.get_int_custom_property(STEP_PROPERTY)
        checkpoint = model.get_string_custom_property(CHECKPOINT_PROPERTY) or model.uri
    else:
        step, checkpoint = model.id, model.uri
    if not isinstance(step, int) or step < 0:
        raise TfxPushError(
            f"Model {model.uri} has step {step!r}; set its int custom property {STEP_PROPERTY!r} to the "
            "non-negative global step, or leave it unset to use the artifact's MLMD id"
        )
    return ModelSource(step=step, checkpoint=checkpoint)


def blessing_of(
    model_name: str, source: ModelSource, model_blessing: Any | None, infra_blessing: Any | None
) -> EvaluationArtifact:
    """TFX's verdict as an exportflow evaluation: blessed only when every given blessing says so."""
    reasons = []
    metrics: dict[str, float] = {}
    for kind, blessing in (("ModelBlessing", model_blessing), ("InfraBlessing", infra_blessing)):
        if blessing is None:
            continue
        value = blessing.get_int_custom_property(BLESSED_PROPERTY)
        passed = value == 1
        verdict = "blessed" if passed else f"not blessed ({BLESSED_PROPERTY}={value})"
        reasons.append(ThresholdResult(metric=kind, passed=passed, reason=f"TFX {kind}: {verdict}"))
        if kind == "ModelBlessing":
            metrics = {
                name: float(blessing.get_float_custom_property(name))
                for name, prop in sorted(blessing.mlmd_artifact.custom_properties.items())
                if prop.WhichOneof("value") == "double_value"
            }
    if not reasons:
        reasons.append(
            ThresholdResult(
                metric="blessing", passed=True, kind="none",
                reason="no ModelBlessing or InfraBlessing given: pushed without validation, as TFX's Pusher does",
            )
        )
    return EvaluationArtifact(
        uri=source.checkpoint,
        checkpoint=CheckpointArtifact(uri=source.checkpoint, model_name=model_name, step=source.step),
        metrics=metrics,
        blessed=all(r.passed for r in reasons),
        reasons=tuple(reasons),
        source="tfx",
    )
