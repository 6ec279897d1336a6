"""Blessing rules: bounds, change against the baseline with direction and tolerances, no thresholds."""

from __future__ import annotations

import math

import pytest

from components.config.schema import ChangeThreshold, ThresholdConfig
from components.evaluation.blessing import NO_THRESHOLDS, bless
from components.evaluation.errors import ThresholdError
from components.ledger.records import Baseline


def change(
    metric: str, direction: str, absolute: float | None = None, relative: float | None = None
) -> ThresholdConfig:
    return ThresholdConfig(metric, change=ChangeThreshold(direction, absolute=absolute, relative=relative))  # type: ignore[arg-type]


def test_no_thresholds_is_an_explicit_decision() -> None:
    blessed, reasons = bless({"auc": 0.1}, (), None)
    assert blessed and [(r.metric, r.passed, r.kind, r.reason) for r in reasons] == [
        ("*", True, "none", NO_THRESHOLDS)
    ]


def test_bounds_are_inclusive_and_each_gives_its_reason() -> None:
    blessed, reasons = bless({"auc": 0.8}, (ThresholdConfig("auc", lower=0.8, upper=0.9),), None)
    assert blessed
    assert [(r.kind, r.value, r.bound, r.reason) for r in reasons] == [
        ("lower", 0.8, 0.8, "auc=0.8 >= lower bound 0.8"),
        ("upper", 0.8, 0.9, "auc=0.8 <= upper bound 0.9"),
    ]
    blessed, reasons = bless({"loss": 0.5}, (ThresholdConfig("loss", upper=0.4),), None)
    assert not blessed and reasons[0].reason == "loss=0.5 > upper bound 0.4"


BASE = Baseline(step=200, metrics={"auc": 0.80, "loss": 0.50})


@pytest.mark.parametrize(
    "threshold, value, passes",
    [
        (change("auc", "higher_is_better"), 0.80, True),  # no tolerance: no worse than the baseline
        (change("auc", "higher_is_better"), 0.79, False),
        (change("auc", "higher_is_better", absolute=-0.02), 0.79, True),  # tolerates a drop of 0.02
        (change("auc", "higher_is_better", absolute=0.01), 0.805, False),  # demands a gain of 0.01
        (change("auc", "higher_is_better", absolute=0.01), 0.811, True),
        (change("auc", "higher_is_better", relative=-0.05), 0.761, True),  # 5% of 0.8 = 0.04
        (change("auc", "higher_is_better", relative=-0.05), 0.759, False),
        (change("auc", "higher_is_better", absolute=-0.05, relative=-0.01), 0.785, False),  # both must hold
        (change("loss", "lower_is_better"), 0.49, True),
        (change("loss", "lower_is_better"), 0.51, False),
        (change("loss", "lower_is_better", relative=-0.1), 0.549, True),
        (change("auc", "higher_is_better", absolute=-1.0), math.nan, False),  # NaN never passes
    ],
)
def test_change_against_the_baseline(threshold: ThresholdConfig, value: float, passes: bool) -> None:
    blessed, (result,) = bless({threshold.metric: value}, (threshold,), BASE)
    assert blessed is passes and result.passed is passes and result.kind == "change"
    assert result.bound == BASE.metrics[threshold.metric] and "(step 200, " in result.reason
    assert ("meets" if passes else "misses") in result.reason


def test_change_without_a_baseline_passes_and_says_why() -> None:
    threshold = change("auc", "higher_is_better")
    blessed, (result,) = bless({"auc": 0.1}, (threshold,), None)
    assert blessed and result.reason == "auc=0.1: no version published yet, change check passes"
    blessed, (result,) = bless({"auc": 0.1}, (threshold,), Baseline(step=100, metrics={"loss": 1.0}))
    assert blessed and "the baseline (step 100) has no auc" in result.reason


def test_every_threshold_is_reported_even_after_a_failure() -> None:
    thresholds = (ThresholdConfig("auc", lower=0.9), change("loss", "lower_is_better"))
    blessed, reasons = bless({"auc": 0.85, "loss": 0.4}, thresholds, BASE)
    assert not blessed and [r.passed for r in reasons] == [False, True]


def test_a_threshold_on_a_metric_that_is_not_produced_is_an_error() -> None:
    with pytest.raises(ThresholdError, match=r"thresholds\[1\] is on 'recall', .* produced only \['auc'\]"):
        bless({"auc": 0.9}, (ThresholdConfig("auc", lower=0.5), ThresholdConfig("recall", lower=0.5)), None)
    with pytest.raises(ValueError):  # ThresholdError is a ValueError, for callers that catch those
        bless({}, (ThresholdConfig("auc", lower=0.5),), None)
