"""The warmup stage: source → requests → lint → replay → inject, for every graph that gets a warmup file.

Nothing is written until every graph's records have passed lint and replay, so a failure leaves the export
in staging exactly as the export stage left it, and the raised ``WarmupError`` stops its publication.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from components.artifacts import ExportArtifact, WarmupReplay, WarmupSummary
from components.config.schema import PipelineConfig, WarmupConfig
from components.warmup import build, sources
from components.warmup.errors import WarmupLintError
from components.warmup.inject import warmup_targets, write_warmup
from components.warmup.lint import LintReport, lint_records, lint_scan
from components.warmup.replay import replay
from components.warmup.signatures import read_serving_graph
from components.warmup.spec import WarmupParams

log = logging.getLogger(__name__)


def inject_warmup(params: WarmupParams, export: ExportArtifact) -> ExportArtifact:
    config = params.config
    warmup = config.warmup
    if warmup.source == "none":
        return export
    model_name = servable_name(config, export.strategy)
    payload = _read_source(warmup)
    checked: list[tuple[str, str, LintReport, WarmupReplay]] = []
    for label, export_dir, signature in warmup_targets(export, warmup.graphs, warmup.signature):
        graph = read_serving_graph(export_dir)
        target = build.Target(model_name, signature, warmup.heads if not label or label == "entry" else ())
        report = _lint(warmup, graph, target, payload)
        where = f"{export.strategy} step {export.step}" + (f" graph {label!r}" if label else "")
        for problem in report.warnings:
            log.warning("warmup for %s: %s", where, problem)
        if report.errors:
            raise WarmupLintError(where, report.errors)
        checked.append((label, export_dir, report, replay(graph, report.records, label=label)))
    for label, export_dir, report, stats in checked:
        path = write_warmup(export_dir, report.records)
        log.info(
            "wrote %d warmup requests into %s (first call %.1f ms, p50 %s ms after it)",
            len(report.records),
            path,
            stats.first_call_ms,
            stats.p50_ms,
        )
    entry = checked[0][2]
    summary = WarmupSummary(
        source=warmup.source,
        records=len(entry.records),
        replays=tuple(stats for *_, stats in checked),
        truncated_from=entry.found if entry.found > len(entry.records) else None,
        warnings=tuple(str(p) for p in entry.warnings),
    )
    return dataclasses.replace(export, warmup_records=len(entry.records), warmup=summary)


def servable_name(config: PipelineConfig, strategy: str) -> str:
    """The model name TF Serving serves the export under: the strategy's servable, else the model's."""
    configured = next((s for s in config.strategies if s.name == strategy), None)
    return (configured.servable if configured else None) or config.name


def _read_source(warmup: WarmupConfig) -> Any:
    if warmup.source == "file":
        return sources.read_warmup_file(warmup.path)
    if warmup.source == "examples":
        return sources.read_examples(warmup.path, warmup.num_records)
    return sources.read_instances(warmup.path)[: warmup.num_records]


def _lint(warmup: WarmupConfig, graph, target: build.Target, payload: Any) -> LintReport:
    if warmup.source == "file":
        return lint_scan(payload, graph, model_name=target.model_name, truncate=warmup.truncate)
    # More than 1000 only with truncate (the config loader checks): lint truncates and warns with the counts.
    if warmup.source == "examples":
        records = build.from_examples(graph, target, payload)
    else:
        records = build.from_instances(graph, target, payload)
    return lint_records(records, graph, model_name=target.model_name, truncate=warmup.truncate)
