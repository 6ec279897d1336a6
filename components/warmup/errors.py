"""Errors of the warmup stage: every one stops the export from being published."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

from components.errors import ExportflowError


class WarmupError(ExportflowError):
    """Warmup requests could not be built, or do not fit the exported model."""


class WarmupSourceError(WarmupError):
    """The configured source (eval examples, warmup file, JSON instances) cannot be read or converted."""


@dataclasses.dataclass(frozen=True)
class LintProblem:
    """One finding of lint.py: where (record index, or None for the whole file), which field, expected,
    found. Defined here, below lint, because ``WarmupLintError`` carries them."""

    record: int | None
    field: str
    expected: str
    found: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = "file" if self.record is None else f"record {self.record}"
        suffix = " (warning)" if self.severity == "warning" else ""
        return f"{where}: {self.field}: expected {self.expected}, found {self.found}{suffix}"


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
