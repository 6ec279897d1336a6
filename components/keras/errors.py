"""Keras stages' exception family."""

from __future__ import annotations

from components.discovery.errors import CheckpointError
from components.errors import ExportflowError, RetryableError


class KerasError(ExportflowError):
    """A Keras model could not be evaluated or exported; the message names the model part at fault."""


class KerasRuntimeError(KerasError):
    """A Keras stage runs in an interpreter without the Keras runtime (e.g. the Estimator's TF 2.15)."""


class KerasModelMismatch(KerasError):
    """The builder's model does not match the checkpoint's weights (a layer's name or shape)."""


class KerasEndpointError(KerasError):
    """An endpoint's input signature does not fit the model, or the exported endpoint does not answer."""


class CheckpointFetchFailed(RetryableError, CheckpointError):
    """A checkpoint file on an object store did not arrive whole (the store failed for now, or the bytes
    did not match its CRC32C): nothing of it was kept, and another attempt fetches it again."""
