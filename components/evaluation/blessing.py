"""Bless a checkpoint from its metrics by the config's thresholds; every decision says why."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from components.artifacts import ThresholdResult
from components.config.schema import ThresholdConfig
from components.evaluation.errors import ThresholdError


def bless(
    metrics: Mapping[str, float],
    thresholds: Sequence[ThresholdConfig],
    baseline: Mapping[str, float] | None,
) -> tuple[bool, tuple[ThresholdResult, ...]]:
    """Apply every threshold; blessed only when all pass. No thresholds is an explicit blessing."""
    if not thresholds:
        return True, (ThresholdResult(metric="*", passed=True, reason="blessed: no thresholds configured"),)
    results = []
    for threshold in thresholds:
        if threshold.metric not in metrics:
            raise ThresholdError(
                f"threshold on {threshold.metric!r}, but the evaluation produces only {sorted(metrics)}; "
                "fix evaluation.thresholds[].metric"
            )
        results.extend(_check(threshold, float(metrics[threshold.metric]), baseline))
    return all(r.passed for r in results), tuple(results)


def _check(threshold: ThresholdConfig, value: float, baseline: Mapping[str, float] | None) -> list[ThresholdResult]:
    name = threshold.metric
    out = []
    if threshold.lower is not None:
        ok = value >= threshold.lower
        out.append(ThresholdResult(name, ok, f"{name}={value:.6g} {'>=' if ok else '<'} lower bound {threshold.lower:g}"))
    if threshold.upper is not None:
        ok = value <= threshold.upper
        out.append(ThresholdResult(name, ok, f"{name}={value:.6g} {'<=' if ok else '>'} upper bound {threshold.upper:g}"))
    change = threshold.change
    if change is not None:
        base = None if baseline is None else baseline.get(name)
        if base is None:
            out.append(ThresholdResult(name, True, f"{name}: no published baseline yet, change check passes"))
        else:
            sign = 1.0 if change.direction == "higher_is_better" else -1.0
            allowed = 0.0
            if change.absolute is not None:
                allowed = max(allowed, abs(change.absolute))
            if change.relative is not None:
                allowed = max(allowed, abs(change.relative * base))
            delta = sign * (value - float(base))  # positive is an improvement
            ok = delta >= -allowed
            out.append(
                ThresholdResult(
                    name,
                    ok,
                    f"{name}={value:.6g} vs baseline {float(base):.6g} ({change.direction}): "
                    f"change {value - float(base):+.6g}, allowed worsening {allowed:.6g}",
                )
            )
    return out
