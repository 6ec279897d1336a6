"""Publish one export to ``<destination>/<servable>/<version>/`` so serving never sees a partial version.

Order: every file but ``saved_model.pb`` (each verified by size and CRC32C against the manifest), then
the manifest, then ``saved_model.pb`` — the file TF Serving keys on — last. Files already present with
the right checksum are not copied again, so a rerun of a complete version moves no bytes and a rerun
after a crash finishes the partial version.
"""

from __future__ import annotations

import logging
import os

from components.artifacts import ExportArtifact, FileEntry, PushedModelArtifact
from components.manifest import MANIFEST_PATH, build_manifest, write_manifest
from components.publish.errors import ChecksumMismatch, PublishError
from components.publish.spec import PublishParams
from components.storage import Storage, StorageError, storage_for

log = logging.getLogger(__name__)
SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")


def version_uri(params: PublishParams, version: str) -> str:
    destination = params.config.destination.uri
    servable = params.strategy.servable or params.config.name
    return storage_for(destination).join(destination, servable, version)


def publish(params: PublishParams, export: ExportArtifact) -> PushedModelArtifact:
    manifest = build_manifest(export, params.evaluation, params.strategy, {"warmup_records": export.warmup_records, "warmup": export.warmup})
    manifest_path = write_manifest(export.uri, manifest)
    target = version_uri(params, export.version)
    storage = storage_for(target)
    base = PushedModelArtifact(
        uri=target,
        model_name=export.model_name,
        strategy=export.strategy,
        destination=params.config.destination.uri,
        version=export.version,
        step=export.step,
        manifest_uri=storage.join(target, MANIFEST_PATH),
        files=len(manifest.files) + 1,
        bytes_total=manifest.total_bytes + os.path.getsize(manifest_path),
    )
    if params.dry_run:
        log.info("dry run: would publish %s to %s", export.uri, target)
        return base
    try:
        moved = _copy_in_order(storage, export.uri, target, manifest.files)
    except StorageError as exc:
        raise PublishError(f"publishing {export.uri} to {target} failed: {exc}") from exc
    pushed = PushedModelArtifact(**{**base.__dict__, "bytes_moved": moved, "already_published": moved == 0})
    log.info("published %s (%d files, %d bytes moved)", target, pushed.files, moved)
    return pushed


def _copy_in_order(storage: Storage, source_dir: str, target: str, files: tuple[FileEntry, ...]) -> int:
    graph = [f for f in files if f.path in SAVED_MODEL_FILES]
    rest = [f for f in files if f.path not in SAVED_MODEL_FILES]
    if not graph:
        raise PublishError(f"{source_dir} has no saved_model.pb; refusing to publish")
    manifest_entry = FileEntry(MANIFEST_PATH, os.path.getsize(os.path.join(source_dir, MANIFEST_PATH)))
    moved = 0
    for entry in [*rest, manifest_entry, *graph]:
        moved += _copy_verified(storage, os.path.join(source_dir, entry.path), storage.join(target, entry.path), entry)
    return moved


def _copy_verified(storage: Storage, local_path: str, uri: str, entry: FileEntry) -> int:
    existing = storage.stat(uri)
    if existing is not None and existing.size == entry.size and (
        entry.crc32c is None or storage.checksum(uri) == entry.crc32c
    ):
        return 0
    storage.upload_file(local_path, uri)
    if entry.crc32c is not None and storage.checksum(uri) != entry.crc32c:
        storage.delete(uri)
        raise ChecksumMismatch(f"{uri} does not match the manifest's crc32c {entry.crc32c}")
    return entry.size
