"""Errors of serving control: each says what was wrong, what was (not) changed, and how to go on."""

from __future__ import annotations

from components.errors import ExportflowError, RetryableError


class ServingError(ExportflowError):
    """The serving config could not be read, changed or written."""


class MalformedServingConfig(ServingError, ValueError):
    """The existing model server config does not parse; it is refused and left untouched."""


class ServingConflict(RetryableError, ServingError):
    """Another writer changed the model server config (or moved the label) between our read and write."""


class UnknownLabel(ServingError, ValueError):
    """A label the servable does not have (rollback, status) or a malformed label name."""


class VersionNotPublished(ServingError, ValueError):
    """The version has no complete publication (commit marker + saved_model.pb) at the destination."""


class MultiGraphSet(ServingError, ValueError):
    """The version is a multi-graph set (several TF Serving models): labels and pins are refused for it."""


class VersionNotAvailable(RetryableError, ServingError):
    """TF Serving did not report the version AVAILABLE within the configured wait."""


class ServingModeOff(ServingError):
    """The model's serving.mode is ``latest``: exportflow writes no model server config for it."""
