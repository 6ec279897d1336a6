"""Errors of the config stage."""

from __future__ import annotations

from components.errors import ExportflowError


class ConfigError(ExportflowError, ValueError):
    """A model config is invalid; the message names the file, the field and what was expected."""

    def __init__(self, source: str, field: str, problem: str) -> None:
        self.source = source
        self.field = field
        self.problem = problem
        where = f"{source}: {field}" if field else source
        super().__init__(f"{where}: {problem}")
