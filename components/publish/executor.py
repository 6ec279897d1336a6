"""Publish one export to ``<destination>/<servable>/<version>/`` so serving never sees a partial version.

This executor prepares the inputs — the export's manifest (written once, then only verified), the
storage back-end and transfer settings from the destination config — and hands them to the publish
protocol (``protocol.py``, which documents the order of writes, the lease and the commit marker).
A multi-graph export (``ExportArtifact.graphs``) publishes as one all-or-nothing set.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

from components.artifacts import ExportArtifact, FileEntry, PushedModelArtifact, to_jsonable
from components.config.schema import DestinationConfig
from components.manifest import (
    MANIFEST_PATH,
    build_manifest,
    missing_savedmodel_files,
    read_manifest_file,
    write_manifest,
)
from components.publish.errors import DestinationError, ExportIncomplete
from components.publish.protocol import (
    GraphSource,
    PublishSettings,
    layout_for,
    publish_version,
)
from components.publish.spec import PublishParams
from components.publish.transfer import Observer
from components.storage import InvalidStorageOptions, Storage, StorageOptions, crc32c_of_file
from components.storage.base import MiB

log = logging.getLogger(__name__)


def storage_options(destination: DestinationConfig) -> StorageOptions:
    """The back-end options a destination config asks for (errors name the config field)."""
    if destination.parallelism <= 0:
        raise DestinationError(f"destination.parallelism must be positive, got {destination.parallelism}")
    if destination.chunk_mib <= 0:
        raise DestinationError(f"destination.chunk_mib must be positive, got {destination.chunk_mib}")
    try:
        return StorageOptions(
            project=destination.project,
            credentials_path=destination.credentials_path,
            timeout=destination.timeout_s,
            retry_deadline=destination.retry_deadline_s,
            chunk_size=destination.chunk_mib * MiB,
            pool_size=max(16, destination.parallelism + 4),
            durable=destination.fsync,
        )
    except InvalidStorageOptions as exc:
        raise DestinationError(f"destination: {exc} (see timeout_s, retry_deadline_s)") from exc


def destination_storage(destination: DestinationConfig) -> Storage:
    from components.storage.factory import destination_storage as built_by_the_factory

    return built_by_the_factory(destination)


def publish_settings(destination: DestinationConfig) -> PublishSettings:
    return PublishSettings(parallelism=destination.parallelism, link_local=destination.hard_links)


def servable_of(params: PublishParams) -> str:
    return params.strategy.servable or params.config.name


def publish(
    params: PublishParams,
    export: ExportArtifact,
    *,
    storage: Storage | None = None,
    observer: Observer | None = None,
) -> PushedModelArtifact:
    """Publish ``export``; ``storage`` and ``observer`` are seams for tests and tools."""
    destination = params.config.destination
    storage = storage or destination_storage(destination)
    graphs = sorted(export.graphs) if export.graphs else [None]
    # Names and the target are validated before anything is read or written.
    layout = layout_for(storage, destination.uri, servable_of(params), export.version, graphs)
    sources = prepare_sources(params, export)
    planned = PushedModelArtifact(
        uri=layout.primary_dir,
        model_name=export.model_name,
        strategy=export.strategy,
        destination=destination.uri,
        version=export.version,
        step=export.step,
        manifest_uri=storage.join(layout.primary_dir, MANIFEST_PATH),
        files=sum(len(s.files) for s in sources),
        bytes_total=sum(s.total_bytes for s in sources),
        marker_uri=layout.marker,
        graph_uris=layout.graph_uris,
    )
    if params.dry_run:
        log.info("dry run: would publish %s to %s", export.uri, planned.uri)
        return planned
    outcome = publish_version(
        storage,
        destination=destination.uri,
        servable=servable_of(params),
        version=export.version,
        graphs=sources,
        marker_info=_marker_info(params, export),
        checkpoint_uri=export.checkpoint_uri,
        settings=publish_settings(destination),
        force=params.force,
        observer=observer,
    )
    if outcome.already_published:
        log.info("%s is already published (0 bytes moved)", planned.uri)
    else:
        log.info(
            "published %s (%d files, %d bytes uploaded, %d bytes copied by the store)",
            planned.uri, planned.files, outcome.bytes_moved, outcome.bytes_copied,
        )
    return dataclasses.replace(
        planned,
        bytes_moved=outcome.bytes_moved,
        bytes_copied=outcome.bytes_copied,
        already_published=outcome.already_published,
    )


def prepare_sources(params: PublishParams, export: ExportArtifact) -> tuple[GraphSource, ...]:
    """Each graph folder with its manifest: written now if absent, else checked against the folder."""
    folders: dict[str | None, str] = dict(export.graphs) if export.graphs else {None: export.uri}
    sources = []
    for name in sorted(folders, key=lambda g: g or ""):
        folder = folders[name]
        if not os.path.isdir(folder):
            raise ExportIncomplete(f"export folder {folder} does not exist (graph {name or 'main'} of {export.uri})")
        sources.append(GraphSource(name, folder, _manifest_files(params, export, folder)))
    return tuple(sources)


def _manifest_files(params: PublishParams, export: ExportArtifact, folder: str) -> tuple[FileEntry, ...]:
    try:
        manifest = read_manifest_file(folder)
    except (ValueError, TypeError) as exc:
        raise ExportIncomplete(f"{os.path.join(folder, MANIFEST_PATH)} is not a readable manifest: {exc}") from exc
    if manifest is None:
        manifest = build_manifest(
            export, params.evaluation, params.strategy, _manifest_extra(export), root=folder
        )
        missing = missing_savedmodel_files([f.path for f in manifest.files])
        if missing:
            raise ExportIncomplete(
                f"export {folder} is not a complete SavedModel: missing {', '.join(missing)}; nothing was published"
            )
        write_manifest(folder, manifest)
    else:
        problems = _check_against_manifest(folder, manifest.files)
        if problems:
            raise ExportIncomplete(
                f"export {folder} no longer matches its manifest: {'; '.join(problems[:5])}"
                f"{' ...' if len(problems) > 5 else ''}; nothing was published"
            )
    path = os.path.join(folder, MANIFEST_PATH)
    return (*manifest.files, FileEntry(MANIFEST_PATH, os.path.getsize(path), crc32c_of_file(path)))


def _check_against_manifest(folder: str, files: tuple[FileEntry, ...]) -> list[str]:
    """Presence and size of every listed file (content is checked end to end when it is sent)."""
    problems = []
    for entry in files:
        try:
            size = os.path.getsize(os.path.join(folder, entry.path))
        except FileNotFoundError:
            problems.append(f"{entry.path} is missing")
            continue
        if size != entry.size:
            problems.append(f"{entry.path} has {size} bytes, the manifest says {entry.size}")
    return problems


def _manifest_extra(export: ExportArtifact) -> dict[str, Any]:
    extra: dict[str, Any] = {"warmup_records": export.warmup_records}
    if export.warmup is not None:  # the warmup stage's summary
        extra["warmup"] = to_jsonable(export.warmup)
    return extra


def _marker_info(params: PublishParams, export: ExportArtifact) -> dict[str, Any]:
    """What retention and the UI read from the commit marker without opening the manifest."""
    return {
        "model": export.model_name,
        "strategy": export.strategy,
        "step": export.step,
        "checkpoint": export.checkpoint_uri,
        "metrics": dict(export.metrics),
        "blessed": params.evaluation.blessed if params.evaluation else True,
    }
