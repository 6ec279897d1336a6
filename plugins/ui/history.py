"""What the "Model exports" page shows, computed from one model's config and ledger.

Pure functions over ``components`` objects: no TensorFlow, no I/O. The HTML page and the
JSON endpoints both render the ``ModelHistory`` built here, so they cannot disagree. Ledger fields that
other work may add or that older ledgers lack are read with ``getattr`` defaults.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal
from urllib.parse import quote

from components.artifacts import to_jsonable
from components.config.schema import PipelineConfig, ThresholdConfig
from components.ledger.records import RankingRule, baseline, best_published
from components.ledger.schema import CheckpointRecord, LedgerState
from components.ranking import rule_for
from plugins.dag_factory import DAG_ID_PREFIX

Direction = Literal["higher_is_better", "lower_is_better"]
_LOWER_IS_BETTER_HINTS = ("loss", "error", "mse", "mae", "rmse", "perplexity")


def dag_id_for(model: str) -> str:
    return f"{DAG_ID_PREFIX}{model}"


@dataclasses.dataclass(frozen=True)
class Reason:
    metric: str
    passed: bool
    reason: str


@dataclasses.dataclass(frozen=True)
class ExportView:
    strategy: str
    version: str
    uri: str
    tags: tuple[str, ...]
    warmup_records: int


@dataclasses.dataclass(frozen=True)
class PublicationView:
    strategy: str
    version: str
    uri: str
    manifest_uri: str
    files: int
    bytes_total: int
    already_published: bool
    published_at: str | None  # ISO 8601 UTC; None in ledgers written before it was recorded
    run_id: str | None  # the Airflow DAG run that published it; None for the plain runner
    run_url: str | None  # that run's page in the Airflow UI
    superseded_by: str | None = None  # a forced republish published this checkpoint again as that version


@dataclasses.dataclass(frozen=True)
class CheckpointView:
    """One row of the table: a checkpoint and everything the ledger knows about it."""

    step: int
    uri: str
    status: Literal["published", "exported", "blessed", "not blessed", "seen"]
    metrics: dict[str, float]
    metrics_source: str | None  # "evaluate" or "logged"; None when not evaluated
    blessed: bool | None  # None when not evaluated
    reasons: tuple[Reason, ...]
    baseline_step: int | None  # the published checkpoint its change thresholds compared against
    evaluated_at: str | None
    first_seen: str | None  # when its first outcome entered the ledger
    exports: tuple[ExportView, ...]
    publications: tuple[PublicationView, ...]
    best_for: tuple[str, ...]  # the strategies whose current best it is

    @property
    def best(self) -> bool:
        return bool(self.best_for)

    @property
    def evaluated(self) -> bool:
        return self.blessed is not None


@dataclasses.dataclass(frozen=True)
class ChartPoint:
    step: int
    value: float
    blessed: bool
    exported: bool
    published: bool
    best: bool
    versions: tuple[str, ...]  # published versions of this checkpoint


@dataclasses.dataclass(frozen=True)
class Bound:
    """A threshold's absolute bound on the charted metric, drawn as a line."""

    kind: Literal["lower", "upper"]
    value: float


@dataclasses.dataclass(frozen=True)
class Chart:
    metric: str | None  # None when nothing was evaluated yet
    direction: Direction
    points: tuple[ChartPoint, ...]  # by step; one per evaluated checkpoint that has a finite value
    bounds: tuple[Bound, ...]


@dataclasses.dataclass(frozen=True)
class ModelHistory:
    model: str
    dag_id: str
    dag_url: str  # the DAG's page in the Airflow UI; its Trigger button opens the Params form
    destination: str
    metrics: tuple[str, ...]  # every metric any evaluation produced, sorted
    best_step: int | None  # the current best (of the first configured strategy that has one)
    best_by_strategy: dict[str, int]  # strategy -> step of its current best
    best_rule: str  # how "best" was decided, in words
    best_metric: str | None  # the metric it was ranked by
    checkpoints: tuple[CheckpointView, ...]  # newest first
    chart: Chart

    @property
    def best(self) -> CheckpointView | None:
        return next((c for c in self.checkpoints if c.best), None)

    def publication(self, strategy: str, version: str) -> tuple[CheckpointView, PublicationView] | None:
        for checkpoint in self.checkpoints:
            for pub in checkpoint.publications:
                if pub.strategy == strategy and pub.version == version:
                    return checkpoint, pub
        return None


def build_history(
    config: PipelineConfig, state: LedgerState, metric: str | None = None, airflow_root: str = "/"
) -> ModelHistory:
    """The page's data for one model. ``metric`` picks the charted metric (default: the ranking metric,
    ``components.ranking``; else the first threshold's)."""
    records = sorted(state.checkpoints.values(), key=lambda r: r.step)
    thresholds = config.evaluation.thresholds
    metrics = tuple(sorted({name for r in records if r.evaluation for name in r.evaluation.metrics}))
    charted = _charted_metric(metric, metrics, thresholds)
    direction = metric_direction(charted, thresholds) if charted else "higher_is_better"
    best_by_strategy, best_rule, best_metric = _best(state, config, charted, direction)
    best_step = next(iter(best_by_strategy.values()), None)
    dag_id = dag_id_for(config.name)
    root = airflow_root if airflow_root.endswith("/") else f"{airflow_root}/"
    views = [
        _checkpoint_view(r, tuple(s for s, step in best_by_strategy.items() if step == r.step), root, dag_id)
        for r in records
    ]
    return ModelHistory(
        model=config.name,
        dag_id=dag_id,
        dag_url=f"{root}dags/{quote(dag_id, safe='')}",
        destination=config.destination.uri,
        metrics=metrics,
        best_step=best_step,
        best_by_strategy=best_by_strategy,
        best_rule=best_rule,
        best_metric=best_metric,
        checkpoints=tuple(reversed(views)),
        chart=Chart(
            metric=charted,
            direction=direction,
            points=tuple(_points(views, charted)) if charted else (),
            bounds=_bounds(charted, thresholds),
        ),
    )


def metric_direction(metric: str, thresholds: tuple[ThresholdConfig, ...]) -> Direction:
    """From a change threshold on the metric; else from which bound it has; else from its name."""
    on_metric = [t for t in thresholds if t.metric == metric]
    for t in on_metric:
        if t.change is not None:
            return t.change.direction
    for t in on_metric:
        if t.lower is not None and t.upper is None:
            return "higher_is_better"
        if t.upper is not None and t.lower is None:
            return "lower_is_better"
    lowered = metric.lower()
    return (
        "lower_is_better" if any(hint in lowered for hint in _LOWER_IS_BETTER_HINTS) else "higher_is_better"
    )


def _charted_metric(
    asked: str | None, metrics: tuple[str, ...], thresholds: tuple[ThresholdConfig, ...]
) -> str | None:
    if asked is not None:
        if asked not in metrics:
            raise UnknownMetric(asked, metrics)
        return asked
    ranked_by = rule_for(thresholds).metric  # the chart shows what "best" is ranked by
    if ranked_by in metrics:
        return ranked_by
    for t in thresholds:
        if t.metric in metrics:
            return t.metric
    return metrics[0] if metrics else None


class UnknownMetric(ValueError):
    """The page was asked to chart a metric no evaluation produced."""

    def __init__(self, metric: str, known: tuple[str, ...]) -> None:
        super().__init__(f"no evaluation produced the metric {metric!r}; choose one of {list(known)}")
        self.metric = metric
        self.known = known


def _best(
    state: LedgerState, config: PipelineConfig, charted: str | None, direction: Direction
) -> tuple[dict[str, int], str, str | None]:
    """Each strategy's current best step in config order, the rule that picked it in words, its metric.

    The ledger's own ``best`` (kept by the publish stage) when it has one; for ledgers without it, the
    blessing baseline, else the best published by the charted metric.
    """
    order = [s.name for s in config.strategies]

    def ordered(strategies: Any) -> list[str]:
        return sorted(strategies, key=lambda s: (order.index(s) if s in order else len(order), s))

    kept = getattr(state, "best", None) or {}
    if kept:
        first = kept[ordered(kept)[0]]
        metric = getattr(first, "metric", None)
        ranked_by = _words(getattr(first, "direction", None) or direction)
        rule = (
            f"best published by {metric} ({ranked_by})"
            if metric
            else "latest published (no metric to rank by)"
        )
        return {s: kept[s].step for s in ordered(kept)}, rule, metric
    found = baseline(state, config.evaluation.thresholds)
    if found is not None:
        change = next(t for t in config.evaluation.thresholds if t.change is not None)
        step, metric, rule = (
            found.step,
            change.metric,
            f"the blessing baseline: best published by {change.metric} ",
        )
        rule += f"({_words(change.change.direction)})"
    elif charted is None:
        return {}, "nothing evaluated yet", None
    else:
        record = best_published(state, RankingRule(charted, direction))
        if record is None:
            return {}, "nothing published yet", None
        step, metric, rule = record.step, charted, f"best published by {charted} ({_words(direction)})"
    return {s: step for s in ordered(state.record(step).publications)}, rule, metric


def _words(direction: str) -> str:
    return direction.replace("_", " ")


def _checkpoint_view(
    record: CheckpointRecord, best_for: tuple[str, ...], root: str, dag_id: str
) -> CheckpointView:
    evaluation = record.evaluation
    exports = tuple(
        ExportView(
            strategy=name,
            version=str(e.version),
            uri=e.uri,
            tags=tuple(getattr(e, "tags", ()) or ()),
            warmup_records=int(getattr(e, "warmup_records", 0) or 0),
        )
        for name, e in sorted(record.exports.items())
    )
    replaced = record.superseded()
    publications = tuple(  # every publication (the ledger's history), by strategy, oldest first
        _publication_view(p.strategy, p, root, dag_id, replaced.get((p.strategy, p.version)))
        for p in sorted(record.publication_history(), key=lambda p: p.strategy)
    )
    if publications:
        status = "published"
    elif exports:
        status = "exported"
    elif evaluation is None:
        status = "seen"
    else:
        status = "blessed" if evaluation.blessed else "not blessed"
    return CheckpointView(
        step=record.step,
        uri=record.uri,
        status=status,
        metrics=dict(evaluation.metrics) if evaluation else {},
        metrics_source=getattr(evaluation, "source", None) if evaluation else None,
        blessed=evaluation.blessed if evaluation else None,
        reasons=tuple(Reason(r.metric, r.passed, r.reason) for r in evaluation.reasons) if evaluation else (),
        baseline_step=getattr(evaluation, "baseline_step", None) if evaluation else None,
        evaluated_at=getattr(evaluation, "evaluated_at", None) if evaluation else None,
        first_seen=getattr(record, "first_seen", None),
        exports=exports,
        publications=publications,
        best_for=best_for,
    )


def _publication_view(
    strategy: str, pushed: Any, root: str, dag_id: str, superseded_by: str | None = None
) -> PublicationView:
    run_id = getattr(pushed, "run_id", None)
    return PublicationView(
        strategy=strategy,
        version=str(pushed.version),
        uri=pushed.uri,
        manifest_uri=pushed.manifest_uri,
        files=int(getattr(pushed, "files", 0) or 0),
        bytes_total=int(getattr(pushed, "bytes_total", 0) or 0),
        already_published=bool(getattr(pushed, "already_published", False)),
        published_at=getattr(pushed, "published_at", None),
        run_id=run_id,
        run_url=f"{root}dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}" if run_id else None,
        superseded_by=superseded_by,
    )


def _points(views: list[CheckpointView], metric: str) -> list[ChartPoint]:
    return [
        ChartPoint(
            step=v.step,
            value=float(v.metrics[metric]),
            blessed=bool(v.blessed),
            exported=bool(v.exports),
            published=bool(v.publications),
            best=v.best,
            versions=tuple(p.version for p in v.publications),
        )
        for v in views
        if v.evaluated and _finite(v.metrics.get(metric))
    ]


def _bounds(metric: str | None, thresholds: tuple[ThresholdConfig, ...]) -> tuple[Bound, ...]:
    bounds = []
    for t in thresholds:
        if t.metric != metric:
            continue
        if t.lower is not None:
            bounds.append(Bound("lower", float(t.lower)))
        if t.upper is not None:
            bounds.append(Bound("upper", float(t.upper)))
    return tuple(bounds)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def jsonable(value: Any) -> Any:
    """Views as plain JSON values; NaN and infinities (a diverged loss) become null, which JSON can carry."""
    return _finite_only(to_jsonable(value))


def _finite_only(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite_only(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_only(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
