"""Pipeline kinds ``final``, ``latest`` and ``best``: tf.estimator's exporters as pipeline strategies.

Each writes one serving SavedModel (tag ``serve``) from ``receivers.predict`` with the library exporter
of the same name, and decides as that exporter does:

* ``final`` exports only the final checkpoint: training said so (the training DAG's asset event carried
  ``final: true`` for this step, which discovery records as ``CheckpointArtifact.final``), or the step
  reached the strategy's ``max_steps``;
* ``latest`` exports every blessed checkpoint and keeps ``exports_to_keep`` (5) staged versions;
* ``best`` exports when ``compare_fn`` (by default the config's ranking rule, ``components.ranking``:
  the first change threshold's metric and direction, else lower ``loss``; or ``metric`` + ``direction``;
  or an import path) finds the evaluation better than the best *this strategy exported before* according to
  the ledger — so a restart never exports a worse model, and the very first call exports.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from components.estimator import build_estimator
from components.export.compat.exporters import (
    BestExporter,
    FinalExporter,
    LatestExporter,
    ServingExporter,
    metric_compare_fn,
)
from components.export.errors import StrategyConfigError
from components.export.savedmodel.versions import Written
from components.export.strategies.base import Decision, OptionsStrategy, StrategyContext
from components.export.strategies.options import BestOptions, FinalOptions, LatestOptions
from components.imports import ImportPath
from components.ranking import rule_for

log = logging.getLogger(__name__)


def is_final(ctx: StrategyContext, max_steps: int | None) -> tuple[bool, str]:
    """The pipeline's definition of "final" (see the module docstring), with the reason."""
    if ctx.is_final:
        return True, "the run marks this checkpoint final (training reported final: true)"
    if max_steps is not None and ctx.step >= max_steps:
        return True, f"step {ctx.step} reached max_steps {max_steps}"
    why = f"; step {ctx.step} < max_steps {max_steps}" if max_steps is not None else ""
    return False, f"not the final checkpoint: training has not reported final{why}"


class _ServingStrategy(OptionsStrategy):
    exporter_class: type[ServingExporter] = LatestExporter

    def exporter(self, ctx: StrategyContext, **extra: Any) -> ServingExporter:
        options = self.options
        return self.exporter_class(
            name=self.name,
            serving_input_receiver_fn=ctx.config.receivers.predict.resolve(),
            assets_extra=options.assets_extra,
            as_text=options.as_text,
            exports_to_keep=None,  # the executor applies retention to the staging folder
            by_reference=options.by_reference,
            strip_default_attrs=options.strip_default_attrs,
            verify=options.verify,
            **extra,
        )

    def write(self, ctx: StrategyContext, export_dir: str) -> Written:
        estimator = build_estimator(ctx.config, ctx.work_dir)
        return self.exporter(ctx).write_into(estimator, export_dir, ctx.checkpoint_path)


class FinalStrategy(_ServingStrategy):
    options_class = FinalOptions
    exporter_class = FinalExporter

    def decide(self, ctx: StrategyContext) -> Decision:
        final, reason = is_final(ctx, self.options.max_steps)
        return Decision(final, reason)


class LatestStrategy(_ServingStrategy):
    options_class = LatestOptions
    exporter_class = LatestExporter

    def decide(self, ctx: StrategyContext) -> Decision:
        return Decision(True, "exports every blessed checkpoint")


class BestStrategy(_ServingStrategy):
    options_class = BestOptions
    exporter_class = BestExporter

    def compare_fn(self, ctx: StrategyContext) -> Callable[..., bool]:
        options: BestOptions = self.options
        if options.compare_fn:
            return ImportPath(options.compare_fn).resolve()
        if options.metric is not None:
            return metric_compare_fn(options.metric, options.direction or "lower_is_better")
        return rule_for(ctx.config.evaluation.thresholds).compare_fn()

    def exporter(self, ctx: StrategyContext, **extra: Any) -> ServingExporter:
        compare = self.compare_fn(ctx)
        return super().exporter(
            ctx,
            compare_fn=compare,
            best_so_far=lambda: ledger_best(ctx.ledger, self.name, compare, exclude_step=ctx.step),
            **extra,
        )

    def decide(self, ctx: StrategyContext) -> Decision:
        metrics = dict(ctx.evaluation.metrics)
        if not metrics:
            raise StrategyConfigError(
                f"strategy {self.name!r} compares evaluations, but step {ctx.step} has no metrics; "
                "configure evaluation.input_fn (or evaluation.source: logged)"
            )
        try:
            better, reason = self.exporter(ctx).is_better(metrics)
        except ValueError as exc:
            if isinstance(exc, StrategyConfigError):
                raise
            raise StrategyConfigError(
                f"strategy {self.name!r}: compare_fn failed on step {ctx.step}: {exc}"
            ) from exc
        return Decision(better, reason)


def ledger_best(
    state: Any, strategy: str, compare_fn: Callable[..., bool], *, exclude_step: int | None = None
) -> Mapping[str, Any] | None:
    """The best evaluation among checkpoints ``strategy`` exported, from the ledger (read tolerantly).

    A record counts when its ``exports`` name the strategy or the ledger's ``best`` marks it for the
    strategy; its metrics come from that export, else from the record's evaluation. Records that lack either, or whose metrics ``compare_fn`` cannot
    compare, are skipped with a log line rather than failing the run.
    """
    best: Mapping[str, Any] | None = None
    records = getattr(state, "checkpoints", None) or {}
    # The ledger's own best-so-far (schema 2: best published per strategy) counts even if its record's
    # exports were pruned.
    marked = getattr((getattr(state, "best", None) or {}).get(strategy), "step", None)
    for record in sorted(records.values(), key=lambda r: getattr(r, "step", 0)):
        step = getattr(record, "step", None)
        exports = getattr(record, "exports", None) or {}
        if step == exclude_step or (strategy not in exports and step != marked):
            continue
        metrics = getattr(exports.get(strategy), "metrics", None)
        if not metrics:
            evaluation = getattr(record, "evaluation", None)
            metrics = getattr(evaluation, "metrics", None)
        if not metrics:
            continue
        try:
            if best is None or compare_fn(best_eval_result=best, current_eval_result=metrics):
                best = dict(metrics)
        except ValueError as exc:
            log.info("ledger step %s not comparable for %s: %s", step, strategy, exc)
    return best
