"""Errors of the warmup stage: every one stops the export from being published."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from components.errors import ExportflowError

if TYPE_CHECKING:
    from components.warmup.lint import LintProblem


class WarmupError(ExportflowError):
    """Warmup requests could not be built, or do not fit the exported model."""


class WarmupSourceError(WarmupError):
    """The configured source (eval examples, warmup file, JSON instances) cannot be read or converted."""


class WarmupLintError(WarmupError):
    """Warmup records that TF Serving would reject or silently skip; lists every problem found."""

    def __init__(self, where: str, problems: Sequence[LintProblem]) -> None:
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"warmup requests for {where} have {len(self.problems)} problem(s):\n{lines}")


class WarmupReplayError(WarmupError):
    """A warmup record failed when run on the loaded SavedModel; TF Serving would fail the model load."""

    def __init__(self, message: str, record: int | None) -> None:
        self.record = record
        super().__init__(message)
