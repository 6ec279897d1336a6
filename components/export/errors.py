"""Errors of the export stage.

Contract violations (what tf.estimator and tf.contrib raise as ``ValueError``) are ``ExportContractError``,
which is also a ``ValueError``, so callers written against TensorFlow's exporters keep working.
"""

from __future__ import annotations

from components.errors import ExportflowError


class ExportError(ExportflowError):
    """An export failed; nothing partial is left in the staging folder."""


class VerificationError(ExportError):
    """An exported SavedModel does not load under one of its tags."""


class ExportContractError(ExportError, ValueError):
    """An argument breaks an export contract (a bad name, receiver, spec, asset or checkpoint)."""


class InvalidNameError(ExportContractError):
    """A strategy, exporter or graph name that cannot be used as a directory."""


class UnsafeAssetPathError(ExportContractError):
    """An ``assets_extra`` key that is absolute, climbs out with ``..`` or escapes through a symlink."""


class EstimatorSpecError(ExportContractError):
    """model_fn returned an EstimatorSpec that lacks what its mode needs for export."""


class ReceiverMismatchError(ExportContractError):
    """An input receiver does not provide what model_fn reads (or is not a receiver at all)."""


class CheckpointMismatchError(ExportContractError):
    """The graph needs variables the checkpoint lacks (or holds with another shape or dtype)."""


class MissingCheckpointError(ExportContractError):
    """No checkpoint was given and none can be found in the model directory."""


class ExportContextError(ExportContractError):
    """The export context was misused: nested export modes, or a signature or graph name given twice."""


class StrategyConfigError(ExportContractError):
    """A configured strategy's parameters are unknown or of the wrong type."""


class UnknownStrategyError(ExportContractError):
    """A config names a strategy kind that is not registered."""


class StrategyRegistryError(ExportContractError):
    """Two providers register the same strategy kind, or an entry point does not load."""


class StagingFailed(ExportError):
    """The export could not be handed over to staging (its ``retryable`` follows the staging error)."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
