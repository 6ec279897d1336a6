"""``ExportStrategy(name, export_fn)`` — tf.contrib.learn's export contract, kept exactly.

An immutable pair (fields ``name``, ``export_fn`` in that order; it unpacks like a tuple). ``export_fn``
must accept ``(estimator, export_path)``, ``(estimator, export_path, checkpoint_path)`` or
``(estimator, export_path, checkpoint_path, eval_result)``; anything else is a ``ValueError`` when the
strategy is built, not when it first runs. ``name`` becomes a directory and is validated as one.
"""

from __future__ import annotations

import collections
import inspect
import os
from collections.abc import Callable, Mapping
from typing import Any, Self

from components.export.errors import ExportContractError, ExportError
from components.export.savedmodel.folder_names import validate_name

_ACCEPTED = (2, 3, 4)


def export_fn_arity(export_fn: Any) -> int:
    """How many of ``(estimator, export_path, checkpoint_path, eval_result)`` ``export_fn`` takes."""
    if not callable(export_fn):
        raise ExportContractError(f"export_fn must be callable, got {type(export_fn).__name__} {export_fn!r}")
    try:
        signature = inspect.signature(export_fn)
    except (TypeError, ValueError) as exc:
        raise ExportContractError(f"cannot read the parameters of export_fn {export_fn!r}: {exc}") from exc
    positional, required_keyword_only = 0, []
    for parameter in signature.parameters.values():
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            positional += 1
        elif parameter.kind is parameter.VAR_POSITIONAL:
            raise ExportContractError(
                f"export_fn {export_fn!r} takes *{parameter.name}; name its parameters: "
                "(estimator, export_path[, checkpoint_path[, eval_result]])"
            )
        elif parameter.kind is parameter.KEYWORD_ONLY and parameter.default is parameter.empty:
            required_keyword_only.append(parameter.name)
    if required_keyword_only or positional not in _ACCEPTED:
        raise ExportContractError(
            f"export_fn {getattr(export_fn, '__name__', export_fn)!r} has signature {signature}; it must accept "
            "(estimator, export_path), (estimator, export_path, checkpoint_path) or "
            "(estimator, export_path, checkpoint_path, eval_result)"
        )
    return positional


class ExportStrategy(collections.namedtuple("ExportStrategy", ["name", "export_fn"])):
    """A named export function; ``export`` passes it only the arguments it accepts."""

    __slots__ = ()

    def __new__(cls, name: str, export_fn: Callable[..., Any]) -> Self:
        validate_name(name, "ExportStrategy name")
        export_fn_arity(export_fn)
        return super().__new__(cls, name, export_fn)

    def _replace(self, **changes: Any) -> Self:
        return type(self)(**{**self._asdict(), **changes})  # validated like a new one

    def export(
        self,
        estimator: Any,
        export_path: str,
        checkpoint_path: str | None = None,
        eval_result: Mapping[str, Any] | None = None,
    ) -> str | None:
        """Run ``export_fn`` and return the path it exported to (``None`` if it exported nothing)."""
        if eval_result is not None and checkpoint_path is None:
            raise ExportContractError(
                f"ExportStrategy {self.name!r}: eval_result was given without checkpoint_path; "
                "an evaluation belongs to a checkpoint, pass both"
            )
        arity = export_fn_arity(self.export_fn)
        args: list[Any] = [estimator, os.fspath(export_path), checkpoint_path, eval_result][:arity]
        result = self.export_fn(*args)
        if result is None:
            return None
        if isinstance(result, bytes):
            return result.decode()
        if isinstance(result, (str, os.PathLike)):
            return os.fspath(result)
        raise ExportError(
            f"ExportStrategy {self.name!r}: export_fn returned {type(result).__name__}; it must return the "
            "path it exported to"
        )
