"""The component's one exception family: bad inputs to the TFX component, each naming the fix."""

from __future__ import annotations

from components.errors import ExportflowError


class TfxPushError(ExportflowError, ValueError):
    """The TFX inputs cannot be published (a Model artifact with no SavedModel, an unknown strategy, ...)."""
