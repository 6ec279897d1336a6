"""The provenance manifest written into every export (``assets.extra/export_manifest.json``).

It lists every other file of the export with its size and CRC32C, so publication can verify what it
copied and a reader can tell exactly which checkpoint, metrics, strategy and TF build made the version.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any

from components.artifacts import EvaluationArtifact, ExportArtifact, FileEntry, from_jsonable, to_jsonable
from components.config.schema import StrategyConfig
from components.storage import crc32c_of_file

MANIFEST_PATH = "assets.extra/export_manifest.json"
MANIFEST_VERSION = 1


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
            rel = os.path.relpath(path, export_dir)
            if rel == MANIFEST_PATH:
                continue
            entries.append(FileEntry(path=rel, size=os.path.getsize(path), crc32c=crc32c_of_file(path)))
    return entries


def build_manifest(
    export: ExportArtifact,
    evaluation: EvaluationArtifact | None,
    strategy: StrategyConfig,
    extra: dict[str, Any] | None = None,
) -> Manifest:
    import tensorflow as tf

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
        tensorflow_version=tf.__version__,
        signatures=dict(export.signatures),
        signature_digest=hashlib.sha256(digest_source).hexdigest()[:16],
        files=tuple(list_export_files(export.uri)),
        extra=dict(extra or {}),
    )


def write_manifest(export_dir: str, manifest: Manifest) -> str:
    """Write atomically; returns the manifest's path."""
    path = os.path.join(export_dir, MANIFEST_PATH)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(to_jsonable(manifest), handle, indent=1, sort_keys=True)
    os.replace(tmp, path)
    return path


def read_manifest(data: bytes) -> Manifest:
    return from_jsonable(Manifest, json.loads(data))
