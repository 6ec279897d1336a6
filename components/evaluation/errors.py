"""Errors of the evaluation stage. Each message names the checkpoint (its URI and step) and the cause.

Problems with the checkpoint's files themselves (damaged index, truncated or missing shard, unreadable,
vanished) are ``components.discovery.errors.CheckpointError``s, raised by the same integrity check
wherever a checkpoint is read.
"""

from __future__ import annotations

from components.errors import ExportflowError, RetryableError


class EvaluationError(ExportflowError):
    """A checkpoint could not be evaluated."""


class ThresholdError(EvaluationError, ValueError):
    """A threshold names a metric the evaluation does not produce."""


class EvalInputError(EvaluationError):
    """The configured eval input_fn raised."""


class CheckpointMismatch(EvaluationError):
    """The checkpoint's variables do not match the model_fn's (another model, or other params)."""


class LoggedMetricsMissing(RetryableError, EvaluationError):
    """``source: logged`` but training has not (yet) logged eval summaries for the checkpoint's step."""
