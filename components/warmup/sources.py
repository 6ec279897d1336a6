"""Read the configured warmup source: eval tf.Examples, a user's warmup file, or JSON instances.

Paths come from the model's config only (local or any storage scheme, e.g. ``gs://``). Nothing here knows
the model: building requests from what is read is ``build``'s job, judging a user's file is ``lint``'s.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from typing import Any

from components.storage import StorageError, storage_for
from components.storage.registry import scheme_of
from components.warmup import tfrecord
from components.warmup.errors import WarmupSourceError


def read_examples(path: str, count: int) -> list[bytes]:
    """The first ``count`` serialized tf.Examples of a TFRecord file; only those records are read."""
    from google.protobuf.message import DecodeError
    from tensorflow.core.example import example_pb2

    with _local_file(path) as local, open(local, "rb") as handle:
        found = tfrecord.scan(handle, limit=count)
    if found.error is not None:
        raise WarmupSourceError(f"warmup examples file {path}: {_describe(found.error)}")
    if not found.records:
        raise WarmupSourceError(
            f"warmup examples file {path} holds no records; point warmup.path at eval data"
        )
    for index, record in enumerate(found.records):
        try:
            example_pb2.Example.FromString(record)
        except DecodeError as exc:
            raise WarmupSourceError(
                f"warmup examples file {path}: record {index} is not a serialized tf.Example ({exc})"
            ) from exc
    return list(found.records)


def read_warmup_file(path: str) -> tfrecord.Scan:
    """Every record of a user's warmup file, and where reading stopped if the file is damaged."""
    with _local_file(path) as local, open(local, "rb") as handle:
        return tfrecord.scan(handle)


def read_instances(path: str) -> list[Any]:
    """Instances of a TF Serving REST-style JSON file: ``{"instances": [...]}`` (or ``"examples"``, or a list)."""
    try:
        data = json.loads(_read_bytes(path))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WarmupSourceError(f"warmup instances file {path} is not JSON: {exc}") from exc
    if isinstance(data, dict):
        keys = [k for k in ("instances", "examples") if k in data]
        if len(keys) != 1:
            raise WarmupSourceError(
                f'warmup instances file {path}: expected an object with "instances" (TF Serving REST '
                f"request shape), found keys {sorted(data)}"
            )
        data = data[keys[0]]
    if not isinstance(data, list) or not data:
        raise WarmupSourceError(
            f'warmup instances file {path}: expected a non-empty list of instances, e.g. {{"instances": '
            f'[{{"dense": [0.1, ...], "item_id": 3}}]}}, found {type(data).__name__} {str(data)[:80]}'
        )
    return data


def _describe(error: tfrecord.FrameError) -> str:
    if error.kind == "not_tfrecord":
        return f"not a TFRecord file ({error.detail} at byte 0)"
    return f"record {error.record} (byte {error.offset}) is {error.kind}: {error.detail}"


def _read_bytes(path: str) -> bytes:
    try:
        return storage_for(path).read_bytes(path)
    except StorageError as exc:
        raise WarmupSourceError(f"cannot read warmup source {path}: {exc}") from exc


@contextlib.contextmanager
def _local_file(path: str) -> Iterator[str]:
    """``path`` itself when local; else a temporary download, removed afterwards."""
    if scheme_of(path) == "file":
        local = path.removeprefix("file://")
        if not os.path.isfile(local):
            raise WarmupSourceError(f"warmup source {path} does not exist or is not a file")
        yield local
        return
    with tempfile.TemporaryDirectory(prefix="exportflow-warmup-") as folder:
        local = os.path.join(folder, "source")
        try:
            storage_for(path).download_file(path, local)
        except StorageError as exc:
            raise WarmupSourceError(f"cannot read warmup source {path}: {exc}") from exc
        yield local
