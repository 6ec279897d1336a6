"""Keras stages' exception family."""

from __future__ import annotations

from components.errors import ExportflowError


class KerasError(ExportflowError):
    """A Keras model could not be evaluated or exported; the message names the model part at fault."""


class KerasRuntimeError(KerasError):
    """A Keras stage runs in an interpreter without the Keras runtime (e.g. the Estimator's TF 2.15)."""


class KerasModelMismatch(KerasError):
    """The builder's model does not match the checkpoint's weights (a layer's name or shape)."""


class KerasEndpointError(KerasError):
    """An endpoint's input signature does not fit the model, or the exported endpoint does not answer."""
