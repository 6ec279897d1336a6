"""Errors of the preflight checks, and the ``Problem`` each check reports."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from components.errors import ExportflowError


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing wrong with a config: the field, what is wrong, how to fix it."""

    field: str
    problem: str
    fix: str
    transient: bool = False  # a storage error a retry may not meet (network, 5xx)

    def __str__(self) -> str:
        return f"{self.field}: {self.problem}; fix: {self.fix}"


class PreflightError(ExportflowError):
    """Base of the preflight family."""


class PreflightFailed(PreflightError):
    """A config's code or storage is not usable; ``problems`` lists every one found."""

    def __init__(self, source: str, problems: Iterable[Problem]) -> None:
        self.source = source
        self.problems = tuple(problems)
        lines = "".join(f"\n  - {p}" for p in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s) found before any work:{lines}")

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        return all(p.transient for p in self.problems)
