"""One ranking rule: ledger records, publish retention, the ``best`` export strategy and the UI agree on
which checkpoint is best, because all four rank with ``components.ranking``."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from components.artifacts import CheckpointArtifact, EvaluationArtifact, ExportArtifact, PushedModelArtifact
from components.config import parse_config
from components.export.strategies.base import StrategyContext
from components.export.strategies.exporter_kinds import BestStrategy, ledger_best
from components.ledger import Ledger
from components.ledger.records import best_published, record_evaluation, record_export, record_publication
from components.publish.marker import CommitMarker
from components.publish.retention import VersionView, decide, policy_for
from components.ranking import DEFAULT_RANKING, RankingRule, rule_for
from plugins.ui.history import build_history
from tests.support.example_pipeline import TrainedModel, example_config_dict

# auc is the ranking metric (the change threshold); loss comes first, so "the first threshold" is not it.
THRESHOLDS = [
    {"metric": "loss", "upper": 5.0},
    {"metric": "auc", "lower": 0.5, "change": {"direction": "higher_is_better"}},
]
# step -> metrics: by auc 200 is best; by loss (the old UI chart default, the old exporter default) 300 is.
METRICS = {100: {"auc": 0.80, "loss": 0.40}, 200: {"auc": 0.90, "loss": 0.35}, 300: {"auc": 0.85, "loss": 0.20}}


def make_config(tmp_path: Path, thresholds: list[dict]):
    fake = TrainedModel(tmp_path / "model", tmp_path / "data", ())
    data = example_config_dict(
        fake, tmp_path / "published", merge={"evaluation": {"thresholds": thresholds}}, strategies=[{"name": "best", "kind": "best"}]
    )
    return parse_config(data, base_dir=tmp_path)


def evaluation(step: int) -> EvaluationArtifact:
    checkpoint = CheckpointArtifact(uri=f"/m/model.ckpt-{step}", model_name="example", step=step)
    return EvaluationArtifact(uri=checkpoint.uri, checkpoint=checkpoint, metrics=METRICS[step], blessed=True)


def test_ledger_retention_best_strategy_and_ui_agree_on_the_best(tmp_path: Path) -> None:
    config = make_config(tmp_path, THRESHOLDS)
    rule = rule_for(config.evaluation.thresholds)
    assert rule == RankingRule("auc", "higher_is_better")
    ledger = Ledger(str(tmp_path / "published"), "example")
    for step, metrics in METRICS.items():
        record_evaluation(ledger, evaluation(step))
        record_export(ledger, ExportArtifact(
            uri=f"/staging/best/{step}", model_name="example", strategy="best", version=str(step), step=step,
            checkpoint_uri=f"/m/model.ckpt-{step}", metrics=metrics,
        ))
        state = record_publication(ledger, PushedModelArtifact(
            uri=f"/published/example/{step}", model_name="example", strategy="best", destination="/published",
            version=str(step), step=step, manifest_uri=f"/published/example/{step}/manifest.json",
        ), f"/m/model.ckpt-{step}", rule)

    # 1. the ledger's best-so-far
    assert state.best["best"].step == 200
    # 2. publish retention keeps version 200 as the best (keep=1 would otherwise keep only 300)
    views = {
        str(step): VersionView(str(step), (None,), (None,), CommitMarker.from_dict(
            {"graphs": [{"name": None}], "metrics": metrics}
        ))
        for step, metrics in METRICS.items()
    }
    reasons = {d.version: d.reason for d in decide(views, policy_for(config), current=None)}
    assert "best by auc" in reasons["200"] and "best" not in reasons["300"]
    # 3. the best strategy's compare_fn picks 200's metrics from the ledger, and declines a worse checkpoint
    strategy = BestStrategy("best", {})
    ctx = StrategyContext(
        config=config, evaluation=evaluation(300), checkpoint_path="/m/model.ckpt-300", ledger=state,
        is_final=False, work_dir=str(tmp_path / "work"),
    )
    assert ledger_best(state, "best", strategy.compare_fn(ctx)) == METRICS[200]
    assert strategy.compare_fn(ctx).__name__ == "auc_larger"
    # 4. the UI marks 200 best and charts the ranking metric by default
    history = build_history(config, state)
    assert history.best_step == 200
    assert history.chart.metric == "auc" and history.best_metric == "auc"


def test_without_a_change_threshold_every_place_ranks_by_lower_loss(tmp_path: Path) -> None:
    config = make_config(tmp_path, [{"metric": "auc", "lower": 0.5}])
    assert rule_for(config.evaluation.thresholds) == DEFAULT_RANKING
    assert policy_for(config).best == DEFAULT_RANKING
    ctx = StrategyContext(
        config=config, evaluation=evaluation(300), checkpoint_path="/m/model.ckpt-300", ledger=None,  # type: ignore[arg-type]
        is_final=False, work_dir=str(tmp_path / "work"),
    )
    assert BestStrategy("best", {}).compare_fn(ctx).__name__ == "loss_smaller"
    assert BestStrategy("best", {"metric": "auc", "direction": "higher_is_better"}).compare_fn(ctx).__name__ == (
        "auc_larger"
    )


def test_the_rule_skips_missing_and_nan_values_and_breaks_ties_by_the_later_step() -> None:
    rule = RankingRule("auc", "higher_is_better")
    candidates = [("a", 1, {"auc": 0.9}), ("b", 2, {"auc": 0.9}), ("c", 3, {"auc": math.nan}), ("d", 4, {})]
    assert rule.best(candidates) == "b"
    assert RankingRule("loss", "lower_is_better").best([("a", 1, {"loss": 0.2}), ("b", 2, {"loss": 0.3})]) == "a"
    assert rule.best([("c", 3, {"auc": math.nan})]) is None
    compare = rule.compare_fn()
    assert compare(best_eval_result={"auc": 0.5}, current_eval_result={"auc": 0.6}) is True
    assert compare(best_eval_result={"auc": 0.5}, current_eval_result={"auc": 0.5}) is False  # strict
    with pytest.raises(ValueError, match="current_eval_result cannot be empty or lack 'auc'"):
        compare(best_eval_result={"auc": 0.5}, current_eval_result={"loss": 0.1})


def test_a_direction_that_is_not_one_of_the_two_is_refused() -> None:
    with pytest.raises(ValueError, match="direction must be 'lower_is_better' or 'higher_is_better', got 'up'"):
        RankingRule("auc", "up")  # type: ignore[arg-type]


def test_best_published_falls_back_to_the_latest_when_nothing_has_the_metric(tmp_path: Path) -> None:
    ledger = Ledger(str(tmp_path), "example")
    for step in (100, 200):
        state = record_publication(ledger, PushedModelArtifact(
            uri=f"/p/{step}", model_name="example", strategy="best", destination="/p", version=str(step),
            step=step, manifest_uri=f"/p/{step}/m.json",
        ), f"/m/model.ckpt-{step}")
    assert best_published(state, DEFAULT_RANKING).step == 200
