"""Errors of the evaluation stage."""

from __future__ import annotations

from components.errors import ExportflowError


class EvaluationError(ExportflowError):
    """A checkpoint could not be evaluated."""


class ThresholdError(EvaluationError, ValueError):
    """A threshold names a metric the evaluation does not produce."""
