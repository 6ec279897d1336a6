"""Import paths (``package.module:attribute``) from trusted config, resolved lazily."""

from __future__ import annotations

import importlib
import re
from typing import Any, Self

from components.errors import ExportflowError

_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


class ImportPathError(ExportflowError, ValueError):
    """An import path is malformed or does not resolve."""


class ImportPath(str):
    """A ``module:attribute`` string; only config files may hold one (never a trigger's conf)."""

    def __new__(cls, value: str) -> Self:
        if not isinstance(value, str) or not _IMPORT_PATH.match(value):
            raise ImportPathError(
                f"{value!r} is not an import path; write it as 'package.module:function', "
                "e.g. 'examples.model:model_fn'"
            )
        return super().__new__(cls, value)

    def resolve(self) -> Any:
        module_name, _, attr_path = self.partition(":")
        try:
            target: Any = importlib.import_module(module_name)
        except ImportError as exc:
            raise ImportPathError(f"cannot import module {module_name!r} for {self!s}: {exc}") from exc
        for attr in attr_path.split("."):
            try:
                target = getattr(target, attr)
            except AttributeError as exc:
                raise ImportPathError(f"module {module_name!r} has no attribute {attr_path!r}") from exc
        return target
