"""TF Serving's ``ModelServerConfig`` text proto: parsed, edited and rendered with its own proto classes.

TF Serving replaces its whole config on every re-read and unloads any model missing from it, so an edit
here changes only the servable it names and keeps every other ``config { ... }`` entry (and every field
of the named one that exportflow does not set, such as ``logging_config``) as it was. Parsing and
rendering both go through ``model_server_config_pb2`` + ``google.protobuf.text_format``: what exportflow
writes is what TF Serving will read, and a malformed file is reported with its line and column.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from components.serving.errors import MalformedServingConfig, ServingError

PLATFORM = "tensorflow"


@dataclasses.dataclass(frozen=True)
class ServableEntry:
    """exportflow's view of one ``config { ... }`` entry: what it loads and which label names which version."""

    name: str
    base_path: str
    versions: tuple[int, ...]  # model_version_policy.specific.versions, sorted; () = another policy
    labels: Mapping[str, int]  # version_labels
    policy: str  # "specific", "latest", "all" or "" (TF Serving's default: latest 1)


def parse(text: str, where: str) -> Any:
    """The ``ModelServerConfig`` in ``text``; a parse error names ``where``, the line and the column."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        line, column = exc.GetLine(), exc.GetColumn()
        at = f"line {line}, column {column}" if line is not None else "somewhere"
        detail = str(exc).split(" : ", 1)[-1]
        raise MalformedServingConfig(
            f"model server config {where} is malformed at {at}: {detail}; exportflow left it untouched — "
            "fix it (it must parse as TF Serving's ModelServerConfig text proto) or remove it"
        ) from exc
    if config.WhichOneof("config") == "custom_model_config":
        raise MalformedServingConfig(
            f"model server config {where} uses custom_model_config; exportflow manages model_config_list "
            "only, and left it untouched"
        )
    return config


def render(config: Any, where: str) -> str:
    """``config`` as text, checked first: it parses back to the same message and every label of every
    entry points at a version that entry loads (TF Serving rejects the config otherwise)."""
    from google.protobuf import text_format

    text = text_format.MessageToString(config)
    if parse(text, where) != config:
        raise ServingError(f"model server config for {where} does not round-trip through its parser; not written")
    names = [entry.name for entry in config.model_config_list.config]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ServingError(f"model server config for {where} would list {duplicates} twice; not written")
    for entry in map(view, config.model_config_list.config):
        dangling = {label: v for label, v in entry.labels.items() if entry.policy == "specific" and v not in entry.versions}
        if dangling:
            raise ServingError(
                f"model server config for {where}: labels {dangling} of {entry.name!r} point at versions it "
                f"does not load ({list(entry.versions)}); not written"
            )
    return text


def empty() -> Any:
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.SetInParent()
    return config


def view(entry: Any) -> ServableEntry:
    policy = entry.model_version_policy.WhichOneof("policy_choice") or ""
    versions = tuple(sorted(entry.model_version_policy.specific.versions)) if policy == "specific" else ()
    return ServableEntry(entry.name, entry.base_path, versions, dict(entry.version_labels), policy)


def find(config: Any, name: str) -> ServableEntry | None:
    entry = _entry(config, name)
    return None if entry is None else view(entry)


def with_servable(
    config: Any, name: str, base_path: str, versions: tuple[int, ...] | set[int], labels: Mapping[str, int]
) -> Any:
    """A copy of ``config`` where servable ``name`` loads exactly ``versions`` with ``labels``; other
    entries, and fields of this one exportflow does not own, stay as they were."""
    result = type(config)()
    result.CopyFrom(config)
    result.model_config_list.SetInParent()
    entry = _entry(result, name)
    if entry is None:
        entry = result.model_config_list.config.add()
        entry.name = name
    entry.base_path = base_path
    entry.model_platform = PLATFORM
    entry.model_version_policy.Clear()
    entry.model_version_policy.specific.SetInParent()  # no versions: loads none (never "latest")
    entry.model_version_policy.specific.versions.extend(sorted(set(versions)))
    entry.version_labels.clear()
    for label, version in sorted(labels.items()):
        entry.version_labels[label] = version
    return result


def _entry(config: Any, name: str) -> Any:
    return next((e for e in config.model_config_list.config if e.name == name), None)
