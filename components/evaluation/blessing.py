"""Bless a checkpoint from its metrics by the config's thresholds; every decision says why.

* No thresholds: blessed, with the explicit reason "blessed: no thresholds configured" — never an
  absent decision (TFX's Evaluator writes no blessing then, and its Pusher silently does nothing).
* ``lower`` / ``upper``: inclusive bounds on the metric.
* ``change``: against the baseline (the best version already published, from the ledger). The
  improvement is ``value - baseline`` when higher is better, ``baseline - value`` when lower is better.
  ``absolute`` is the least improvement required, in the metric's units (signed: ``-0.01`` tolerates a
  drop of 0.01, ``0.01`` demands a gain of 0.01); ``relative`` the same as a fraction of ``|baseline|``;
  with both, both must hold; with neither, the checkpoint must be no worse than the baseline. No
  baseline yet (nothing published) passes, and says so.
* A NaN metric fails every check on it. A threshold on a metric the evaluation does not produce is a
  configuration error (``ThresholdError``), not a silent pass.

Blessed only when every check passes; one ``ThresholdResult`` per check, with the value and the bound.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from components.artifacts import ThresholdResult
from components.config.schema import ChangeThreshold, ThresholdConfig
from components.evaluation.errors import ThresholdError
from components.ledger.records import Baseline

NO_THRESHOLDS = "blessed: no thresholds configured"


def bless(
    metrics: Mapping[str, float],
    thresholds: Sequence[ThresholdConfig],
    baseline: Baseline | Mapping[str, float] | None,
    *,
    checkpoint: str = "the checkpoint",
) -> tuple[bool, tuple[ThresholdResult, ...]]:
    """Apply every threshold; blessed only when all pass. No thresholds is an explicit blessing."""
    if not thresholds:
        return True, (ThresholdResult(metric="*", passed=True, reason=NO_THRESHOLDS, kind="none"),)
    if baseline is not None and not isinstance(baseline, Baseline):
        baseline = Baseline(step=-1, metrics=dict(baseline))
    results: list[ThresholdResult] = []
    for i, threshold in enumerate(thresholds):
        if threshold.metric not in metrics:
            raise ThresholdError(
                f"evaluation.thresholds[{i}] is on {threshold.metric!r}, but evaluating {checkpoint} produced "
                f"only {sorted(metrics) or 'no metrics'}; fix evaluation.thresholds[{i}].metric"
            )
        results.extend(_check(threshold, float(metrics[threshold.metric]), baseline))
    return all(r.passed for r in results), tuple(results)


def _check(threshold: ThresholdConfig, value: float, baseline: Baseline | None) -> list[ThresholdResult]:
    name = threshold.metric
    out = []
    if threshold.lower is not None:
        ok = value >= threshold.lower  # False for NaN
        sign = ">=" if ok else "<"
        out.append(
            ThresholdResult(
                name,
                ok,
                f"{name}={value:.6g} {sign} lower bound {threshold.lower:g}",
                "lower",
                value,
                threshold.lower,
            )
        )
    if threshold.upper is not None:
        ok = value <= threshold.upper
        sign = "<=" if ok else ">"
        out.append(
            ThresholdResult(
                name,
                ok,
                f"{name}={value:.6g} {sign} upper bound {threshold.upper:g}",
                "upper",
                value,
                threshold.upper,
            )
        )
    if threshold.change is not None:
        out.append(_change(name, value, threshold.change, baseline))
    return out


def _change(name: str, value: float, change: ChangeThreshold, baseline: Baseline | None) -> ThresholdResult:
    base = None if baseline is None else baseline.metrics.get(name)
    if base is None or math.isnan(base):
        why = (
            "no version published yet"
            if baseline is None
            else f"the baseline (step {baseline.step}) has no {name}"
        )
        return ThresholdResult(
            name, True, f"{name}={value:.6g}: {why}, change check passes", "change", value, None
        )
    direction = change.direction.replace("_", " ")
    improvement = (value - base) if change.direction == "higher_is_better" else (base - value)
    needs = []
    if change.absolute is not None:
        needs.append(change.absolute)
    if change.relative is not None:
        needs.append(change.relative * abs(base))
    required = max(needs) if needs else 0.0  # both must hold: the stricter one decides
    ok = improvement >= required  # False for NaN
    of_step = f"step {baseline.step}, " if baseline.step >= 0 else ""
    rules = []
    if change.absolute is not None:
        rules.append(f"absolute {change.absolute:+g}")
    if change.relative is not None:
        rules.append(f"relative {change.relative:+g} x |baseline|")
    rule = " and ".join(rules) or "no worse than the baseline"
    reason = (
        f"{name}={value:.6g} vs baseline {base:.6g} ({of_step}{direction}): improvement {improvement:+.6g}, "
        f"{'meets' if ok else 'misses'} required {required:+.6g} ({rule})"
    )
    return ThresholdResult(name, ok, reason, "change", value, base)
