"""The provenance manifest written into every export (``assets.extra/export_manifest.json``).

It lists every other file of the export with its size and CRC32C, so publication can verify what it
copied and a reader can tell exactly which checkpoint, metrics, strategy and TF build made the version.
A multi-graph export has one manifest per graph folder.

The manifest is written once per export folder and then only read: its bytes identify the version's
content (the commit marker records its CRC32C), so a rerun must find the very same manifest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from typing import Any

from components.artifacts import EvaluationArtifact, ExportArtifact, FileEntry, from_jsonable, to_jsonable
from components.config.schema import StrategyConfig
from components.layout import (
    GRAPH_FILES,
    MANIFEST_PATH,
    SAVED_MODEL_PB,
    VARIABLES_INDEX,
    VARIABLES_PREFIX,
    variables_data_shard,
)
from components.storage import crc32c_of_file

MANIFEST_VERSION = 1
_DATA_SHARD = re.compile(rf"^{re.escape(VARIABLES_PREFIX)}\.data-(\d{{5}})-of-(\d{{5}})$")


@dataclasses.dataclass(frozen=True)
class Manifest:
    manifest_version: int
    model: str
    version: str
    step: int
    checkpoint: str
    strategy: dict[str, Any]
    metrics: dict[str, float]
    blessed: bool
    blessing_reasons: tuple[str, ...]
    tensorflow_version: str
    signatures: dict[str, tuple[str, ...]]
    signature_digest: str
    files: tuple[FileEntry, ...]
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


def list_export_files(export_dir: str) -> list[FileEntry]:
    """Every file below ``export_dir`` except the manifest, with size and CRC32C, in a stable order."""
    entries = []
    for folder, dirs, files in os.walk(export_dir):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, export_dir).replace(os.sep, "/")
            if rel == MANIFEST_PATH or name.startswith(f"{os.path.basename(MANIFEST_PATH)}.tmp"):
                continue
            entries.append(FileEntry(path=rel, size=os.path.getsize(path), crc32c=crc32c_of_file(path)))
    return entries


def missing_savedmodel_files(paths: list[str] | tuple[str, ...]) -> list[str]:
    """What a SavedModel with these files lacks: the graph, the variables index, or data shards."""
    present = set(paths)
    missing = []
    if not present & set(GRAPH_FILES):
        missing.append(SAVED_MODEL_PB)
    shards = [m for m in (_DATA_SHARD.match(p) for p in present) if m]
    if shards and VARIABLES_INDEX not in present:
        missing.append(VARIABLES_INDEX)
    if VARIABLES_INDEX in present and not shards:
        missing.append(variables_data_shard(0, 1))
    for total in {int(m.group(2)) for m in shards}:
        for index in range(total):
            name = variables_data_shard(index, total)
            if name not in present:
                missing.append(name)
    return missing


def installed_tensorflow_version() -> str:
    """The installed TF's version, from package metadata (importing TF takes seconds)."""
    from importlib.metadata import PackageNotFoundError, version

    for distribution in ("tensorflow", "tensorflow-cpu", "tf-nightly"):
        try:
            return version(distribution)
        except PackageNotFoundError:
            continue
    import tensorflow as tf

    return tf.__version__


def build_manifest(
    export: ExportArtifact,
    evaluation: EvaluationArtifact | None,
    strategy: StrategyConfig,
    extra: dict[str, Any] | None = None,
    root: str | None = None,
    files: tuple[FileEntry, ...] | None = None,
    tensorflow_version: str | None = None,
) -> Manifest:
    """The manifest of ``root`` (default: the export's folder; one graph's folder for multi-graph), or of
    ``files`` when the export is not on local disk (listed with sizes and CRC32C by its store).
    ``tensorflow_version`` is the TF that wrote the export; by default the installed one (a caller without
    TensorFlow, like the TFX component, reads it from ``saved_model.pb`` and passes it)."""
    digest_source = json.dumps(to_jsonable(export.signatures), sort_keys=True).encode()
    return Manifest(
        manifest_version=MANIFEST_VERSION,
        model=export.model_name,
        version=export.version,
        step=export.step,
        checkpoint=export.checkpoint_uri,
        strategy=to_jsonable(strategy),
        metrics=dict(export.metrics),
        blessed=evaluation.blessed if evaluation else True,
        blessing_reasons=tuple(r.reason for r in evaluation.reasons) if evaluation else (),
        tensorflow_version=tensorflow_version if tensorflow_version is not None else installed_tensorflow_version(),
        signatures=dict(export.signatures),
        signature_digest=hashlib.sha256(digest_source).hexdigest()[:16],
        files=files if files is not None else tuple(list_export_files(root or export.uri)),
        extra=dict(extra or {}),
    )


def write_manifest(export_dir: str, manifest: Manifest) -> str:
    """Write atomically; returns the manifest's path."""
    path = os.path.join(export_dir, MANIFEST_PATH)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(to_jsonable(manifest), handle, indent=1, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return path


def read_manifest(data: bytes) -> Manifest:
    return from_jsonable(Manifest, json.loads(data))


def read_manifest_file(export_dir: str) -> Manifest | None:
    """The manifest already in ``export_dir``, or None when there is none yet."""
    path = os.path.join(export_dir, MANIFEST_PATH)
    try:
        with open(path, "rb") as handle:
            return read_manifest(handle.read())
    except FileNotFoundError:
        return None
