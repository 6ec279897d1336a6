"""The warmup stage: source → requests → lint → replay → inject, for every graph that gets a warmup file.

Nothing is written until every graph's records have passed lint and replay, so a failure leaves the export
in staging exactly as the export stage left it, and the raised ``WarmupError`` stops its publication.
With ``source: none`` nothing is built, but a warmup file the export already carries (an exporter's
``warmup_file`` or ``assets_extra``) is still linted and replayed: nothing ships unchecked.

An export staged on an object store is read through this worker's scratch cache (a worker that exported
it, or fetched it before, downloads nothing) into a private local view; the files warmup changed are
written back to staging, and the artifact keeps the staged URIs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from typing import Any, Self

from components.artifacts import ExportArtifact, WarmupReplay, WarmupSummary
from components.config.schema import PipelineConfig, WarmupConfig
from components.layout import ENTRY_GRAPH, MANIFEST_PATH, WARMUP_PATH
from components.storage import scheme_of
from components.warmup import build, routed, sources
from components.warmup.errors import WarmupLintError
from components.warmup.inject import warmup_targets, write_warmup
from components.warmup.lint import LintReport, lint_records, lint_scan
from components.warmup.replay import replay
from components.warmup.signatures import ServingGraph, read_serving_graph
from components.warmup.spec import WarmupParams

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class _Checked:
    label: str
    export_dir: str
    report: LintReport
    stats: WarmupReplay
    rewrite: bool  # False: the export's own file passed as it is


def inject_warmup(params: WarmupParams, export: ExportArtifact) -> ExportArtifact:
    if scheme_of(export.uri) == "file":
        return _inject_local(params, export)
    from components.staging.area import staging_area
    from components.staging.handover import local_view, push_changes

    area = staging_area(params.config)
    root = export.uri.rstrip("/")
    if params.config.warmup.source == "none" and not any(
        info.uri.endswith(f"/{WARMUP_PATH}") for info in area.storage.list(root)
    ):
        return export  # nothing to build, nothing to check: no need to fetch the export
    with local_view(area, root, skip=(MANIFEST_PATH,)) as (folder, staged):
        local = dataclasses.replace(
            export,
            uri=folder,
            graphs={name: os.path.join(folder, *uri[len(root) + 1 :].split("/")) for name, uri in export.graphs.items()},
        )
        warmed = _inject_local(params, local)
        if warmed is not local:
            written = push_changes(area, root, folder, {rel: info for rel, info in staged.items() if rel != MANIFEST_PATH})
            log.info("warmup wrote %d file(s) back to %s", written, root)
    return dataclasses.replace(warmed, uri=export.uri, graphs=dict(export.graphs))


def _inject_local(params: WarmupParams, export: ExportArtifact) -> ExportArtifact:
    config, warmup = params.config, params.config.warmup
    model_name = servable_name(config, export.strategy)
    checked: list[_Checked] = []
    if warmup.source == "none":
        for label, export_dir in _graphs(export):
            if os.path.exists(os.path.join(export_dir, WARMUP_PATH)):
                graph = read_serving_graph(export_dir)
                scan = sources.read_warmup_file(os.path.join(export_dir, WARMUP_PATH))
                report = lint_scan(scan, graph, model_name=model_name, truncate=warmup.truncate)
                rewrite = len(report.records) != len(scan.records)
                checked.append(_check(export, label, graph, report, rewrite))
        if not checked:
            return export
    else:
        payload = _read_source(warmup)
        with _Requests(warmup, export, model_name, payload) as requests:
            for label, export_dir, signature in warmup_targets(export, warmup.graphs, warmup.signature):
                graph = read_serving_graph(export_dir)
                report = requests.for_graph(label, graph, signature, entry=not checked)
                checked.append(_check(export, label, graph, report, rewrite=True))
    for item in checked:
        if item.rewrite:
            path = write_warmup(item.export_dir, item.report.records)
            log.info("wrote %d warmup requests into %s", len(item.report.records), path)
    entry = checked[0]
    summary = WarmupSummary(
        source=warmup.source if warmup.source != "none" else "export",
        records=len(entry.report.records),
        replays=tuple(item.stats for item in checked),
        truncated_from=entry.report.found if entry.report.found > len(entry.report.records) else None,
        warnings=tuple(str(p) for p in entry.report.warnings),
    )
    return dataclasses.replace(export, warmup_records=summary.records, warmup=summary)


def servable_name(config: PipelineConfig, strategy: str) -> str:
    """The model name TF Serving serves the export under: the strategy's servable, else the model's."""
    configured = next((s for s in config.strategies if s.name == strategy), None)
    return (configured.servable if configured else None) or config.name


def _check(
    export: ExportArtifact, label: str, graph: ServingGraph, report: LintReport, rewrite: bool
) -> _Checked:
    """Lint errors stop here, with every problem listed; then the records replay on the loaded model."""
    where = f"the {export.strategy} export of step {export.step}" + (f", graph {label!r}" if label else "")
    for problem in report.warnings:
        log.warning("warmup for %s: %s", where, problem)
    if report.errors:
        raise WarmupLintError(where, report.errors)
    stats = replay(graph, report.records, label=label)
    log.info(
        "warmup for %s: %d requests replayed; first %.1f ms, then p50 %s ms, p99 %s ms",
        where,
        stats.records,
        stats.first_call_ms,
        stats.p50_ms,
        stats.p99_ms,
    )
    return _Checked(label, graph.export_dir, report, stats, rewrite)


def _graphs(export: ExportArtifact) -> list[tuple[str, str]]:
    """Every graph of the export, the entry graph first."""
    graphs = sorted(
        ((n, p) for n, p in export.graphs.items() if n), key=lambda g: (g[0] != ENTRY_GRAPH, g[0])
    )
    return graphs or [("", export.uri)]


def _read_source(warmup: WarmupConfig) -> Any:
    if warmup.source == "file":
        return sources.read_warmup_file(warmup.path)
    if warmup.source == "examples":
        return sources.read_examples(warmup.path, warmup.num_records)
    return sources.read_instances(warmup.path)[: warmup.num_records]


class _Requests:
    """Linted requests per graph: the user's file as read, or requests built from the source.

    A distributed entry graph also takes the rows its shards look up: its requests are built for the
    receiver's inputs, then completed by a ``Router`` — which also makes the requests of any ps graph the
    config asks to warm, from the ids the entry routes to it.
    """

    def __init__(self, warmup: WarmupConfig, export: ExportArtifact, model_name: str, payload: Any) -> None:
        self.warmup, self.export, self.model_name, self.payload = warmup, export, model_name, payload
        self.lookups = routed.remote_lookups(export) if warmup.source != "file" else []
        self._stack = contextlib.ExitStack()
        self._router: routed.Router | None = None
        self._receiver_records: list[bytes] = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()

    def for_graph(self, label: str, graph: ServingGraph, signature: str, *, entry: bool) -> LintReport:
        warmup, model_name = self.warmup, self.model_name
        if warmup.source == "file":
            return lint_scan(self.payload, graph, model_name=model_name, truncate=warmup.truncate)
        shard = any(lookup.graph == label and lookup.signature == signature for lookup in self.lookups)
        if shard and self._router is not None:
            records = self._router.shard_requests(self._receiver_records, label, model_name)
        else:
            target = build.Target(model_name, signature, warmup.heads if entry else ())
            routing = entry and not target.heads and routed.needs_routing(graph, signature, self.lookups)
            receiver = routed.receiver_graph(graph, signature, self.lookups) if routing else graph
            if warmup.source == "examples":
                records = build.from_examples(receiver, target, self.payload)
            else:
                records = build.from_instances(receiver, target, self.payload)
            if routing:
                self._router = self._stack.enter_context(routed.Router(self.export, graph, self.lookups))
                self._receiver_records = records
                records = self._router.with_rows(records)
        # More than 1000 only with truncate (the config loader checks): lint truncates, warns with the counts.
        return lint_records(records, graph, model_name=model_name, truncate=warmup.truncate)
