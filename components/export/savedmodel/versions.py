"""Versions and atomic writes shared by the pipeline executor and the library exporters.

* **Versions** are TF Serving-compatible integers, the checkpoint's global step by default (a rerun
  finds its own export), a timestamp on request.
* **Writes** go to a temp folder next to the target, are verified (every graph, every tag), then
  renamed into place, so a version folder only ever appears complete. An existing complete version is
  skipped as already exported unless ``force``. Crashed temp folders are removed by the shared
  retention helper before each write.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

from components.errors import ExportflowError
from components.export.errors import ExportError, MissingCheckpointError
from components.export.savedmodel.folder_names import validate_version
from components.export.savedmodel.verify import (
    VerifyDepth,
    export_signatures,
    graph_dirs,
    read_set_document,
    read_set_manifest,
    verify_export,
    write_set_document,
)
from components.layout import SET_MANIFEST, graph_order, library_set_path, local_path, served_path
from components.version_folders import is_complete, prune_export_versions, temp_dir_name

log = logging.getLogger(__name__)
VersionScheme = Literal["step", "timestamp"]
_STEP_SUFFIX = re.compile(r"-(\d+)$")


@dataclasses.dataclass(frozen=True)
class Written:
    """What a writer put into its folder (returned by strategies' ``write``; ``None`` means defaults)."""

    layout: str = "single"  # "single" (one SavedModel), "per_mode" or "distributed" (a set)
    graphs: dict[str, str] = dataclasses.field(default_factory=dict)  # graph -> folder, for sets
    variables: str = "saved"  # "saved", "hardlink", "copy" or "mixed"
    fallback_reason: str | None = None  # by reference was asked for and not done: why
    declined: str | None = None  # the writer chose not to export (an Exporter returning None)


@dataclasses.dataclass(frozen=True)
class WriteOutcome:
    path: str
    version: str
    written: Written
    signatures: dict[str, tuple[str, ...]]
    already_exported: bool = False


def checkpoint_step(checkpoint_path: str) -> int | None:
    """The global step of a checkpoint: from its ``-<step>`` suffix, else its ``global_step`` tensor."""
    match = _STEP_SUFFIX.search(os.path.basename(str(checkpoint_path)))
    if match:
        return int(match.group(1))
    import tensorflow as tf

    try:
        return int(tf.train.load_checkpoint(str(checkpoint_path)).get_tensor("global_step"))
    except (tf.errors.OpError, ValueError, KeyError):  # no such tensor, or an unreadable index
        return None  # the caller falls back to a timestamp


def choose_version(
    export_dir_base: str,
    checkpoint_path: str | None = None,
    *,
    scheme: VersionScheme = "step",
    global_step: int | None = None,
) -> str:
    """The version directory name for an export under ``export_dir_base``."""
    if scheme not in ("step", "timestamp"):
        raise ValueError(f"version scheme must be 'step' or 'timestamp', got {scheme!r}")
    if scheme == "step":
        step = (
            global_step
            if global_step is not None
            else (checkpoint_step(checkpoint_path) if checkpoint_path else None)
        )
        if step is not None:
            return validate_version(step)
        log.info("no global step for %s; naming the version after the time", checkpoint_path)
    stamp = int(time.time())
    while os.path.exists(os.path.join(export_dir_base, str(stamp))):
        stamp += 1
    return str(stamp)


def latest_checkpoint_or_fail(estimator: Any, checkpoint_path: str | None) -> str:
    """``checkpoint_path``, else the estimator's latest checkpoint, else ``MissingCheckpointError``."""
    if checkpoint_path:
        return os.fspath(checkpoint_path)
    found = estimator.latest_checkpoint()
    if not found:
        raise MissingCheckpointError(
            f"no checkpoint_path given and no checkpoint in {estimator.model_dir}; train first or pass one"
        )
    return found


def written_from_folder(path: str) -> Written:
    """Describe an existing export (for one found already exported)."""
    manifest = read_set_manifest(path)
    if manifest is None:
        return Written()
    return Written(
        layout=manifest.get("layout", "set"), graphs={g: e["path"] for g, e in manifest["graphs"].items()}
    )


def make_base(base: str) -> None:
    try:
        os.makedirs(base, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create the export folder {base}: {exc.strerror or exc}") from exc
    if not os.access(base, os.W_OK | os.X_OK):
        raise ExportError(f"the export folder {base} is not writable")


def write_version(
    base: str,
    version: str,
    write: Callable[[str], Written | None],
    *,
    verify: VerifyDepth = "full",
    force: bool = False,
    label: str = "export",
) -> WriteOutcome | None:
    """Write ``<base>/<version>`` through a verified temp folder; ``None`` when the writer declined."""
    final_dir = os.path.join(base, version)
    if is_complete(final_dir) and not force:
        log.info("%s: version %s already exported at %s", label, version, final_dir)
        return WriteOutcome(
            final_dir, version, written_from_folder(final_dir), export_signatures(final_dir), True
        )
    make_base(base)
    prune_export_versions(base)  # crashed temp folders only
    tmp_dir = os.path.join(base, temp_dir_name(version))
    result = _write_verified(tmp_dir, write, verify, f"{label} failed writing version {version}")
    if result is None:
        log.info("%s declined version %s", label, version)
        return None
    written, signatures = result
    _replace_dir(tmp_dir, final_dir, base)
    log.info("%s: wrote version %s at %s (variables %s)", label, version, final_dir, written.variables)
    return WriteOutcome(final_dir, version, written, signatures)


def _write_verified(
    tmp_dir: str, write: Callable[[str], Written | None], verify: VerifyDepth, failure: str
) -> tuple[Written, dict[str, tuple[str, ...]]] | None:
    """Run ``write`` into ``tmp_dir`` and verify it; on any failure nothing is left behind."""
    shutil.rmtree(tmp_dir, ignore_errors=True)
    try:
        written = write(tmp_dir) or Written()
        if written.declined is not None:
            shutil.rmtree(tmp_dir, ignore_errors=True)
            log.info("declined: %s", written.declined)
            return None
        signatures = verify_export(tmp_dir, verify)
    except BaseException as exc:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        if isinstance(exc, ExportflowError) or not isinstance(exc, Exception):
            raise
        raise ExportError(f"{failure}: {type(exc).__name__}: {exc}") from exc
    return written, signatures


def _replace_dir(tmp_dir: str, final_dir: str, base: str) -> None:
    if os.path.exists(final_dir):  # forced: move the old one aside first, remove it after
        aside = os.path.join(base, temp_dir_name(f"{os.path.basename(final_dir)}-replaced"))
        os.replace(final_dir, aside)
        os.replace(tmp_dir, final_dir)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(tmp_dir, final_dir)


def publish_set_by_graph(
    base: str,
    version: str,
    set_dir: str,
    *,
    last: Sequence[str] = (),
    force: bool = False,
) -> dict[str, str]:
    """Move a verified set kept together in ``set_dir`` into its served form under ``base``.

    Each graph goes to ``served_path(version, graph)`` (``<base>/<graph>/<version>/``, TF Serving's layout),
    in ``graph_order`` with ``last`` last (the entry or serving graph, which needs the others); the set
    document then lands at ``library_set_path(version)`` (``<base>/export_sets/<version>.json``), so its
    presence means the whole set is in place (components/layout.py). A graph version that already exists
    is kept unless ``force``.
    """
    graphs = graph_dirs(set_dir)
    paths = {}
    for graph in map(str, graph_order(graphs, last)):  # a set's graphs are all named
        target = local_path(base, served_path(version, graph))
        target_base = os.path.dirname(target)
        make_base(target_base)
        if is_complete(target) and not force:
            log.info("graph %s version %s already exported at %s", graph, version, target)
        else:
            _replace_dir(graphs[graph], target, target_base)
        paths[graph] = target
    target = local_path(base, library_set_path(version))
    make_base(os.path.dirname(target))
    document = read_set_manifest(set_dir)
    if document is None:
        raise ExportError(f"the set {set_dir} has no {SET_MANIFEST}; nothing names its graphs")
    earlier = read_set_document(target)
    if earlier is not None:  # another exporter of this version (include_graphs)
        document = {**earlier, "graphs": {**earlier["graphs"], **document["graphs"]}}
    write_set_document(target, document)
    shutil.rmtree(set_dir, ignore_errors=True)
    return paths


def write_set_version(
    base: str,
    version: str,
    write: Callable[[str], Written | None],
    *,
    verify: VerifyDepth = "full",
    force: bool = False,
    last: Sequence[str] = (),
    label: str = "export",
) -> dict[str, str]:
    """Write a multi-graph set through a verified temp folder into ``<base>/<graph>/<version>/``.

    Graph versions that already exist are kept (unless ``force``), as Monolith's exporters skip
    duplicated exports; the set manifest merges with one an earlier exporter of this version wrote.
    """
    make_base(base)
    prune_export_versions(base)  # crashed temp folders only
    tmp_dir = os.path.join(base, temp_dir_name(f"set-{version}"))
    if _write_verified(tmp_dir, write, verify, f"{label} failed writing set version {version}") is None:
        return {}
    return publish_set_by_graph(base, version, tmp_dir, last=last, force=force)
