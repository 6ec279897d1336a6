"""The one decoder from plain dicts (YAML, JSON) to typed frozen dataclasses.

Configs, strategy options and artifacts (ledger, manifests, stage envelopes) are all read with
``decode``, so a value means the same everywhere. The rule, by annotation:

* **dataclass**: a mapping; unknown keys and missing required fields are errors; ``init=False`` fields
  are not read;
* **Optional[X]** / ``X | None``: None stays None, else decoded as X (for other unions, the first type);
  None elsewhere is an error for every type below;
* **Literal[...]**: one of its values;
* **bool**: only ``true``/``false`` (1 and 0 are not booleans);
* **int**: an integer, never a bool;
* **float**: a number (an int becomes a float), never a bool;
* **str**: a string;
* **tuple[X, ...]** / **list[X]**: a list (or tuple), each item decoded as X; a tuple comes back;
* **dict[K, V]**: a mapping, each value decoded as V;
* ``Any`` and other types: the value as given, unless ``converters`` has the type.

Errors are ``DecodeError`` carrying the field path, what was expected and the value, so each caller words
them its own way (a config error names its file and field).
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal

# What a caller may check on each decoded value: (path, annotation, value) -> value, or raise DecodeError.
Check = Callable[[str, Any, Any], Any]


class DecodeError(ValueError):
    """``value`` at ``path`` is not what its annotation allows.

    ``expected`` is the wording of what was allowed ("an integer", "a list", "one of [...]"); ``unknown``
    and ``missing`` name dataclass keys that were not fields or not given.
    """

    def __init__(
        self,
        path: str,
        value: Any,
        *,
        expected: str = "",
        problem: str = "",
        annotation: Any = None,
        unknown: tuple[str, ...] = (),
        known: tuple[str, ...] = (),
        missing: str | None = None,
    ) -> None:
        self.path = path
        self.value = value
        self.expected = expected
        self.annotation = annotation
        self.unknown = unknown
        self.known = known
        self.missing = missing
        self.problem = problem or (f"expected {expected}, got {value!r}" if expected else "invalid value")
        super().__init__(f"{path}: {self.problem}" if path else self.problem)


# The wording of each kind of value in DecodeError.expected.
BOOL, INT, NUMBER, STRING, LIST, MAPPING = "true or false", "an integer", "a number", "a string", "a list", "a mapping"


def decode(
    tp: Any,
    data: Any,
    *,
    path: str = "",
    converters: Mapping[Any, Callable[[Any], Any]] | None = None,
    check: Check | None = None,
    skip: frozenset[str] = frozenset(),
) -> Any:
    """``data`` as the annotated type ``tp`` (see the module docstring for the rule).

    ``converters`` build types the rule does not know (e.g. ``ImportPath``; a ValueError they raise
    becomes a DecodeError with its message). ``check`` sees every decoded value with its path, for a
    caller's own rules (non-empty strings, relative paths). ``skip`` names top-level dataclass fields
    that are not read from ``data``.
    """
    return _Decoder(dict(converters or {}), check)(tp, data, path, skip)


def join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


@functools.cache
def type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


@dataclasses.dataclass(frozen=True)
class _Decoder:
    converters: dict[Any, Callable[[Any], Any]]
    check: Check | None

    def __call__(self, tp: Any, data: Any, path: str, skip: frozenset[str] = frozenset()) -> Any:
        value = self._decode(tp, data, path, skip)
        return self.check(path, tp, value) if self.check is not None else value

    def _decode(self, tp: Any, data: Any, path: str, skip: frozenset[str]) -> Any:
        origin = typing.get_origin(tp)
        if origin in (typing.Union, types.UnionType):
            args = typing.get_args(tp)
            if data is None:
                if type(None) in args:
                    return None
                raise DecodeError(path, data, expected="a value", annotation=tp)
            return self(next(a for a in args if a is not type(None)), data, path)
        if tp is Any:
            return data
        if tp in self.converters:
            try:
                return self.converters[tp](data)
            except ValueError as exc:
                raise DecodeError(path, data, problem=str(exc), annotation=tp) from exc
        if dataclasses.is_dataclass(tp):
            return self._dataclass(tp, data, path, skip)
        if origin is Literal:
            if not any(data == a and type(data) is type(a) for a in typing.get_args(tp)):
                raise DecodeError(path, data, expected=_wording(tp), annotation=tp)
            return data
        if origin in (tuple, list):
            if not isinstance(data, (list, tuple)):
                raise DecodeError(path, data, expected=LIST, annotation=tp)
            args = [a for a in typing.get_args(tp) if a is not Ellipsis] or [Any]
            items = [self(args[0], v, f"{path}[{i}]") for i, v in enumerate(data)]
            return tuple(items) if origin is tuple else items
        if origin is dict or tp is dict:
            if not isinstance(data, Mapping):
                raise DecodeError(path, data, expected=MAPPING, annotation=tp)
            value_type = (typing.get_args(tp) or (Any, Any))[1]
            return {k: self(value_type, v, join(path, str(k))) for k, v in data.items()}
        if tp is bool and not isinstance(data, bool):
            raise DecodeError(path, data, expected=BOOL, annotation=tp)
        if tp is int and (isinstance(data, bool) or not isinstance(data, int)):
            raise DecodeError(path, data, expected=INT, annotation=tp)
        if tp is float:
            if isinstance(data, bool) or not isinstance(data, (int, float)):
                raise DecodeError(path, data, expected=NUMBER, annotation=tp)
            return float(data)
        if tp is str and not isinstance(data, str):
            raise DecodeError(path, data, expected=STRING, annotation=tp)
        return data

    def _dataclass(self, cls: type, data: Any, path: str, skip: frozenset[str]) -> Any:
        if not isinstance(data, Mapping):
            raise DecodeError(path, data, expected=MAPPING, annotation=cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init and f.name not in skip}
        unknown = tuple(sorted(str(k) for k in set(data) - set(fields)))
        if unknown:
            raise DecodeError(
                path, data, problem=f"{cls.__name__} has no field(s) {list(unknown)}", annotation=cls,
                unknown=unknown, known=tuple(sorted(fields)),
            )
        hints = type_hints(cls)
        values = {}
        for name, field in fields.items():
            if name not in data:
                if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                    raise DecodeError(
                        join(path, name), None, problem="required field is missing", annotation=cls, missing=name
                    )
                continue
            values[name] = self(hints[name], data[name], join(path, name))
        return cls(**values)


def _wording(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return f"one of {list(typing.get_args(tp))}"
    return {bool: BOOL, int: INT, float: NUMBER, str: STRING}.get(tp, "a value")
