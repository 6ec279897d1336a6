"""Publish one export to ``<destination>/<servable>/<version>/`` so serving never sees a partial version.

This executor prepares the inputs — the export's manifest (written once, then only verified), the
storage back-end and transfer settings from the destination config — and hands them to the publish
protocol (``protocol.py``, which documents the order of writes, the version lock and the commit marker).
A multi-graph export (``ExportArtifact.graphs``) publishes as one all-or-nothing set. A re-export of a
checkpoint already published with the same settings is reported as published, not refused as other
content (``_same_export_published``: SavedModels are not byte-reproducible); ``force`` publishes it anew.

Where the bytes come from (the export's staged URI):

* staged on the destination's object store (``gs://`` → ``gs://``): every object is a server-side copy
  of the staged one; the manifest is built from the store's listing (sizes and CRC32C come with it), so
  no byte of the export passes through this worker;
* staged on local disk: read in place (hard links to a local destination on the same filesystem);
* anything else (``gs://`` staging → local destination, another store): the staged objects are fetched
  through this worker's scratch cache into a local view, which is published as a local export.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
from collections.abc import Iterator
from typing import Any

from components.artifacts import ExportArtifact, FileEntry, PushedModelArtifact, to_jsonable
from components.config.schema import PipelineConfig
from components.layout import BOOKKEEPING, GRAPH_FILES, MANIFEST_PATH, PUBLISHED_SUFFIX, version_of
from components.manifest import (
    Manifest,
    build_manifest,
    missing_savedmodel_files,
    read_manifest,
    read_manifest_file,
    write_manifest,
)
from components.model_storage import destination_storage
from components.publish.conflict import dry_run_layout
from components.publish.errors import ExportIncomplete, VersionConflict
from components.publish.layout import Layout, layout_for
from components.publish.marker import MarkedExport, read_marker
from components.publish.protocol import GraphSource, PublishSettings, publish_version
from components.publish.spec import PublishParams
from components.storage import (
    Storage,
    StorageError,
    crc32c_of_bytes,
    crc32c_of_file,
    scheme_of,
)
from components.transfer.pool import Observer

log = logging.getLogger(__name__)


def publish_settings(config: PipelineConfig) -> PublishSettings:
    """How to publish, from the config: with ``serving.mode: labels`` TF Serving loads only the versions
    exportflow lists in its model server config, and lists one only after its commit marker
    (components/serving/control.py, ``check_published``), so versions are written straight into place
    (protocol.py, "Placement"); under ``latest`` every numbered folder is loadable: built out of sight."""
    destination = config.destination
    return PublishSettings(
        parallelism=destination.parallelism,
        link_local=destination.hard_links,
        placement="direct" if config.serving.mode == "labels" else "building",
    )


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
    if scheme_of(export.uri) not in ("file", scheme_of(destination.uri)):
        with _fetched(params, export) as local:  # mixed stores: through this worker, once
            return _publish_sources(params, export, storage, layout, prepare_sources(params, local), observer)
    try:
        sources = prepare_sources(params, export)
    except ExportIncomplete:
        found = _published_before(storage, layout, export)  # a retry after the staged copy was released
        if found is not None:
            log.info("%s is already published and its staged copy is gone (0 bytes moved)", found.primary_dir)
            planned = _planned(params, export, storage, found, ())
            return dataclasses.replace(planned, version=found.version, already_published=True)
        raise
    return _publish_sources(params, export, storage, layout, sources, observer)


def _published_before(
    storage: Storage,
    layout: Layout,
    export: ExportArtifact,
    *,
    settings: dict[str | None, tuple[Any, ...]] | None = None,
) -> Layout | None:
    """Where the destination holds this export, committed: the newest version, from ``layout``'s number
    up (a forced republish took a higher one), whose marker names the same model, strategy, step and
    checkpoint and whose every graph holds ``saved_model.pb`` (and, given ``settings``, a manifest
    recording those export settings)."""
    names = storage.list_names(storage.join(layout.base, BOOKKEEPING))
    marked = {v for v in (version_of(n, PUBLISHED_SUFFIX) for n in names) if v is not None}
    numbers = sorted((int(v) for v in marked if v.isdigit() and int(v) >= int(layout.version)), reverse=True)
    for number in numbers:
        candidate = dataclasses.replace(layout, version=str(number))
        if _holds_export(storage, candidate, export) and (settings is None or _exported_alike(storage, candidate, settings)):
            return candidate
    return None


def _exported_alike(storage: Storage, layout: Layout, settings: dict[str | None, tuple[Any, ...]]) -> bool:
    if set(settings) != set(layout.graphs):
        return False
    for graph in layout.graphs:
        manifest = _read_manifest_at(storage, layout.graph_dir(graph))
        if manifest is None or _export_settings(manifest) != settings[graph]:
            return False
    return True


def _holds_export(storage: Storage, layout: Layout, export: ExportArtifact) -> bool:
    marker = read_marker(storage, layout.marker)
    recorded = marker.export if marker is not None else None
    if recorded is None or (recorded.model, recorded.strategy, recorded.step, recorded.checkpoint) != (
        export.model_name,
        export.strategy,
        export.step,
        export.checkpoint_uri,
    ):
        return False
    return all(
        any(storage.stat(storage.join(layout.graph_dir(g), name)) is not None for name in GRAPH_FILES)
        for g in layout.graphs
    )


def _same_export_published(
    params: PublishParams, storage: Storage, layout: Layout, export: ExportArtifact, sources: tuple[GraphSource, ...]
) -> Layout | None:
    """Without ``force``, the rule for re-exporting a published checkpoint: the newest committed version
    (from ``layout``'s number up) that holds this very export — its marker names the same model,
    strategy, step and checkpoint, and every graph's manifest records the same export settings — counts
    as this export already published, though its bytes differ (function names in ``saved_model.pb``
    carry a per-process counter, so no two exports are byte-identical). None when the number holds this
    exact content (the protocol's own idempotent rerun, which also repairs missing objects) or nothing
    like it (then the protocol publishes, or refuses other content with ``VersionConflict``).
    Asked after the protocol refused the number, so the content there differs from ours."""
    settings = _settings_of(params, sources)
    return None if settings is None else _published_before(storage, layout, export, settings=settings)


def _settings_of(params: PublishParams, sources: tuple[GraphSource, ...]) -> dict[str | None, tuple[Any, ...]] | None:
    """Per graph, what decides an export's content besides its checkpoint, as its manifest records it."""
    settings: dict[str | None, tuple[Any, ...]] = {}
    for source in sources:
        manifest = _read_manifest_at(_source_storage(params, source.local_dir), source.local_dir)
        if manifest is None:
            return None
        settings[source.name] = _export_settings(manifest)
    return settings


def _export_settings(manifest: Manifest) -> tuple[Any, ...]:
    """The strategy's config, the signatures, the TensorFlow that wrote it and the warmup it carries
    (the config digest of the ledger covers evaluation only, and the marker records none)."""
    return (
        json.dumps(manifest.strategy, sort_keys=True),
        manifest.signature_digest,
        manifest.tensorflow_version,
        manifest.extra.get("warmup_records"),
    )


def _source_storage(params: PublishParams, folder: str) -> Storage | None:
    if scheme_of(folder) == "file":
        return None
    from components.staging.area import staging_area

    return staging_area(params.config).storage


def _read_manifest_at(storage: Storage | None, folder: str) -> Manifest | None:
    """The manifest of a graph folder (read as a local folder when ``storage`` is None), or None when
    absent or unreadable."""
    try:
        if storage is None:
            return read_manifest_file(folder)
        found = storage.read_versioned(storage.join(folder, MANIFEST_PATH))
        return read_manifest(found[0]) if found is not None else None
    except (OSError, StorageError, ValueError, TypeError) as exc:
        log.warning("manifest of %s is unreadable (%s); not treated as the same export", folder, exc)
        return None


def _planned(
    params: PublishParams, export: ExportArtifact, storage: Storage, layout: Layout, sources: tuple[GraphSource, ...]
) -> PushedModelArtifact:
    return PushedModelArtifact(
        uri=layout.primary_dir,
        model_name=export.model_name,
        strategy=export.strategy,
        destination=params.config.destination.uri,
        version=export.version,
        step=export.step,
        manifest_uri=storage.join(layout.primary_dir, MANIFEST_PATH),
        files=sum(len(s.files) for s in sources),
        bytes_total=sum(s.total_bytes for s in sources),
        marker_uri=layout.marker,
        graph_uris=layout.graph_uris,
    )


def _publish_sources(
    params: PublishParams,
    export: ExportArtifact,
    storage: Storage,
    layout: Layout,
    sources: tuple[GraphSource, ...],
    observer: Observer | None,
) -> PushedModelArtifact:
    planned = _planned(params, export, storage, layout, sources)
    try:
        return _publish_planned(params, export, storage, layout, sources, observer, planned)
    except VersionConflict:
        # Looked for only now, so a publication that meets no conflict pays no extra round trip.
        republished = None if params.force else _same_export_published(params, storage, layout, export, sources)
        if republished is None:
            raise
    log.info(
        "%s already holds step %d of %s (checkpoint %s, exported with the same strategy settings, "
        "signatures and TensorFlow): %s is a re-export of a published checkpoint and is not published "
        "again — a SavedModel's bytes differ between exports, nothing moved%s; rerun with force to "
        "publish this export under a fresh version number",
        republished.primary_dir, export.step, export.strategy, export.checkpoint_uri, export.uri,
        " (dry run)" * params.dry_run,
    )
    return dataclasses.replace(_at(planned, storage, republished), already_published=True)


def _publish_planned(
    params: PublishParams,
    export: ExportArtifact,
    storage: Storage,
    layout: Layout,
    sources: tuple[GraphSource, ...],
    observer: Observer | None,
    planned: PushedModelArtifact,
) -> PushedModelArtifact:
    destination = params.config.destination
    if params.dry_run:
        found, already = dry_run_layout(storage, layout, sources, params.force)
        planned = _at(planned, storage, found) if found.version != planned.version else planned
        log.info("dry run: would publish %s to %s%s", export.uri, planned.uri, " (already published)" * already)
        return dataclasses.replace(planned, already_published=already)
    outcome = publish_version(
        storage,
        destination=destination.uri,
        servable=servable_of(params),
        version=export.version,
        graphs=sources,
        export=_marked_export(params, export),
        checkpoint_uri=export.checkpoint_uri,
        settings=publish_settings(params.config),
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
    if outcome.version != planned.version:  # force: published under a fresh number (protocol.py)
        planned = dataclasses.replace(
            planned,
            version=outcome.version,
            uri=outcome.uri,
            graph_uris=outcome.graph_uris,
            marker_uri=outcome.marker_uri,
            manifest_uri=storage.join(outcome.uri, MANIFEST_PATH),
        )
    return dataclasses.replace(
        planned,
        bytes_moved=outcome.bytes_moved,
        bytes_copied=outcome.bytes_copied,
        already_published=outcome.already_published,
    )


def _at(planned: PushedModelArtifact, storage: Storage, layout: Layout) -> PushedModelArtifact:
    """``planned`` at another version's layout (a dry run of a forced republish: the fresh number)."""
    return dataclasses.replace(
        planned,
        version=layout.version,
        uri=layout.primary_dir,
        graph_uris=layout.graph_uris,
        marker_uri=layout.marker,
        manifest_uri=storage.join(layout.primary_dir, MANIFEST_PATH),
    )


@contextlib.contextmanager
def _fetched(params: PublishParams, export: ExportArtifact) -> Iterator[ExportArtifact]:
    """The staged export as a local view in this worker's scratch (see ``staging.handover.local_view``)."""
    from components.staging.area import staging_area
    from components.staging.handover import local_view

    root = export.uri.rstrip("/")
    with local_view(staging_area(params.config), root) as (folder, _):
        yield dataclasses.replace(
            export,
            uri=folder,
            graphs={name: os.path.join(folder, *uri[len(root) + 1 :].split("/")) for name, uri in export.graphs.items()},
        )


def prepare_sources(params: PublishParams, export: ExportArtifact) -> tuple[GraphSource, ...]:
    """Each graph folder with its manifest: written now if absent, else checked against the folder."""
    folders: dict[str | None, str] = dict(export.graphs) if export.graphs else {None: export.uri}
    sources = []
    for name in sorted(folders, key=lambda g: g or ""):
        folder = folders[name]
        if scheme_of(folder) != "file":
            sources.append(staged_source(params, export, name, folder))
            continue
        if not os.path.isdir(folder):
            raise ExportIncomplete(f"export folder {folder} does not exist (graph {name or 'main'} of {export.uri})")
        sources.append(GraphSource(name, folder, _manifest_files(params, export, folder)))
    return tuple(sources)


def staged_source(params: PublishParams, export: ExportArtifact, name: str | None, uri: str) -> GraphSource:
    """A graph staged on an object store, described from one listing (sizes and CRC32C as stored).

    Its manifest is written into staging now if absent (a small object), else checked against the
    listing, exactly as for a local folder."""
    from components.staging.area import staging_area
    from components.staging.errors import StagingError
    from components.staging.handover import staged_objects

    storage = staging_area(params.config).storage
    root = uri.rstrip("/")
    try:
        objects = staged_objects(staging_area(params.config), root)
    except StagingError as exc:
        raise ExportIncomplete(f"graph {name or 'main'} of {export.uri}: {exc}") from exc
    listed = {rel: FileEntry(rel, info.size, info.crc32c or storage.checksum(info.uri)) for rel, info in objects.items()}
    manifest_uri = storage.join(root, MANIFEST_PATH)
    if MANIFEST_PATH in listed:
        try:
            manifest = read_manifest(storage.read_bytes(manifest_uri))
        except (ValueError, TypeError) as exc:
            raise ExportIncomplete(f"{manifest_uri} is not a readable manifest: {exc}") from exc
        problems = [
            f"{entry.path} is missing" if entry.path not in listed else f"{entry.path} differs from the manifest"
            for entry in manifest.files
            if listed.get(entry.path) != entry
        ]
        if problems:
            raise ExportIncomplete(
                f"staged export {root} no longer matches its manifest: {'; '.join(problems[:5])}; nothing was published"
            )
    else:
        files = tuple(entry for rel, entry in sorted(listed.items()))
        missing = missing_savedmodel_files([f.path for f in files])
        if missing:
            raise ExportIncomplete(
                f"staged export {root} is not a complete SavedModel: missing {', '.join(missing)}; nothing was published"
            )
        manifest = build_manifest(export, params.evaluation, params.strategy, _manifest_extra(export), files=files)
        data = json.dumps(to_jsonable(manifest), indent=1, sort_keys=True).encode()
        storage.write_bytes(manifest_uri, data)
        listed[MANIFEST_PATH] = FileEntry(MANIFEST_PATH, len(data), crc32c_of_bytes(data))
    return GraphSource(name, root, (*manifest.files, listed[MANIFEST_PATH]))


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


def _marked_export(params: PublishParams, export: ExportArtifact) -> MarkedExport:
    """What retention and the UI read from the commit marker without opening the manifest."""
    return MarkedExport(
        model=export.model_name,
        strategy=export.strategy,
        step=export.step,
        checkpoint=export.checkpoint_uri,
        metrics=dict(export.metrics),
        blessed=params.evaluation.blessed if params.evaluation else True,
    )
