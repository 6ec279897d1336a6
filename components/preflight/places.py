"""Checks of the places a config names: the model_dir lists, source files read, output folders take a write.

A write is probed with an object written and deleted: in the folder itself, or in its nearest existing
ancestor when the folder does not exist yet (what a run would create there), so nothing is left behind.
"""

from __future__ import annotations

import errno
import os
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from components.config.schema import PipelineConfig
from components.layout import PROBE_PREFIX
from components.preflight.errors import Problem


def check_locations(config: PipelineConfig) -> list[Problem]:
    """The model_dir can be listed, source files read; destination, staging and lease folders take a write."""
    from components.config.errors import ConfigError
    from components.discovery import lease
    from components.model_storage import destination_storage
    from components.paths import staging_root

    model_dir_problems = _check_model_dir(config.model_dir)
    problems = model_dir_problems + _check_source_files(config)
    destination = config.destination.uri
    problems += _check_writable(
        "destination.uri",
        destination,
        lambda: destination_storage(config.destination),
        "give the job write access to it, or point destination.uri at a place it can write",
    )
    from components.staging.area import staging_area

    staging = staging_root(config)
    problems += _check_writable(
        "staging",
        staging,
        lambda: staging_area(config).storage,
        f"exports are staged in {staging}: give the job write access, or set staging to a writable location",
    )
    try:
        leases, _ = lease.lease_settings(config)
    except ConfigError as exc:
        return [*problems, Problem(exc.field, exc.problem, "correct the field")]
    if model_dir_problems and leases.startswith(config.model_dir):
        return problems  # the lease folder is inside the model_dir, whose problem is already reported
    problems += _check_writable(
        "discovery.lease_dir",
        leases,
        None,
        f"checkpoints are pinned in {leases} while a run reads them: give the job write access there, or "
        "set discovery.lease_dir to a writable folder on the model_dir's filesystem or bucket",
    )
    return problems


def _check_model_dir(model_dir: str) -> list[Problem]:
    from components.storage import StorageError, TransientStorageError, scheme_of, storage_for

    field = "model_dir"
    if scheme_of(model_dir) == "file":
        local = model_dir.removeprefix("file://")
        if not os.path.exists(local):
            return [
                Problem(
                    field, f"{model_dir} does not exist", "point model_dir at the trainer's checkpoint folder"
                )
            ]
        if not os.path.isdir(local):
            return [
                Problem(
                    field,
                    f"{model_dir} is not a folder",
                    "point model_dir at the trainer's checkpoint folder",
                )
            ]
        try:
            with os.scandir(local) as entries:
                next(entries, None)
        except OSError as exc:
            return [
                Problem(
                    field,
                    f"cannot list {model_dir}: {exc.strerror}",
                    "give the job read access to the folder",
                )
            ]
        return []
    try:
        storage_for(model_dir).list_names(model_dir)
    except StorageError as exc:
        transient = isinstance(exc, TransientStorageError)
        return [
            Problem(
                field, f"cannot list {model_dir}: {exc}", "check the bucket and the credentials", transient
            )
        ]
    return []


def _check_writable(field: str, uri: str, storage_of: Callable[[], Any] | None, fix: str) -> list[Problem]:
    from components.storage import scheme_of

    if scheme_of(uri) == "file":
        return _check_local_writable(field, uri.removeprefix("file://"), fix)
    return _probe_object_store(field, uri, storage_of, fix)


def _check_local_writable(field: str, path: str, fix: str) -> list[Problem]:
    """Write and delete a probe in ``path``, or in its nearest existing ancestor when ``path`` does not exist
    yet (what a run would create there): nothing is left behind, not even a folder."""
    folder = os.path.abspath(path)
    while not os.path.lexists(folder):
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        return [Problem(field, f"{path} cannot be created: {folder} is a file, not a folder", fix)]
    probe = os.path.join(folder, f"{PROBE_PREFIX}{uuid.uuid4().hex}")
    try:
        descriptor = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        where = path if folder == os.path.abspath(path) else f"{path} (its existing parent {folder})"
        reason = "read-only" if exc.errno in (errno.EROFS, errno.EPERM, errno.EACCES) else "not writable"
        return [Problem(field, f"{where} is {reason}: {exc.strerror}", fix)]
    os.close(descriptor)
    os.unlink(probe)
    return []


def _probe_object_store(
    field: str, uri: str, storage_of: Callable[[], Any] | None, fix: str
) -> list[Problem]:
    from components.storage import StorageError, TransientStorageError, storage_for

    try:
        store = storage_of() if storage_of is not None else storage_for(uri)
        probe = store.join(uri, f"{PROBE_PREFIX}{uuid.uuid4().hex}")
        store.write_bytes(probe, b"exportflow preflight probe\n", if_generation_match=0)
        store.delete(probe)
    except StorageError as exc:
        transient = isinstance(exc, TransientStorageError)
        return [Problem(field, f"cannot write a probe object under {uri}: {exc}", fix, transient)]
    return []


def _check_source_files(config: PipelineConfig) -> list[Problem]:
    """Files the run copies in: the warmup source, and strategies' warmup files and extra assets."""

    problems: list[Problem] = []
    warmup = config.warmup
    if warmup.source != "none" and warmup.path:
        problems += _check_readable_file("warmup.path", warmup.path)
    for i, strategy in enumerate(config.strategies):
        params = strategy.params if isinstance(strategy.params, Mapping) else {}
        if params.get("warmup_file"):
            problems += _check_readable_file(
                f"strategies[{i}].params.warmup_file", str(params["warmup_file"])
            )
        assets = params.get("assets_extra")
        for key, source in assets.items() if isinstance(assets, Mapping) else ():
            problems += _check_readable_file(f"strategies[{i}].params.assets_extra.{key}", str(source))
    return problems


def _check_readable_file(field: str, path: str) -> list[Problem]:
    from components.storage import StorageError, TransientStorageError, scheme_of, storage_for

    if scheme_of(path) == "file":
        local = path.removeprefix("file://")
        try:
            with open(local, "rb") as handle:
                handle.read(1)
        except IsADirectoryError:
            return [Problem(field, f"{path} is a folder", "point it at a file")]
        except OSError as exc:
            return [
                Problem(
                    field, f"cannot read {path}: {exc.strerror}", "point it at an existing, readable file"
                )
            ]
        return []
    try:
        found = storage_for(path).stat(path)
    except StorageError as exc:
        transient = isinstance(exc, TransientStorageError)
        return [Problem(field, f"cannot read {path}: {exc}", "check the path and the credentials", transient)]
    if found is None:
        return [Problem(field, f"{path} does not exist", "point it at an existing object")]
    return []
