"""The one rule that says which checkpoint or version is "best".

Ledger records, publish retention, the ``best`` export strategy and the UI all rank with the rule
``rule_for`` derives from a config's evaluation thresholds, so they cannot disagree:

* **metric and direction**: the first threshold with a ``change`` rule; without one, ``loss``, lower is
  better (tf.estimator's BestExporter default);
* **comparable values**: a candidate without the metric, or whose value is NaN, is not ranked;
* **tie-break**: among equal values the later step (or version number) wins.

The seed-compatible export library must not import config or ledger, so it takes ``compare_fn()``: a
plain ``compare_fn(best_eval_result, current_eval_result)`` that is strict (an equal value is not
better). This module imports nothing of the project for that reason.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, Protocol, TypeVar

Direction = Literal["higher_is_better", "lower_is_better"]
T = TypeVar("T")


class _Change(Protocol):
    direction: Direction


class Threshold(Protocol):
    """What the rule reads of ``components.config.schema.ThresholdConfig`` (this module imports no config,
    so the seed-compatible export library can use it)."""

    metric: str
    change: _Change | None


@dataclasses.dataclass(frozen=True)
class RankingRule:
    """How candidates are ranked: by ``metric``, in ``direction``; ties go to the later step."""

    metric: str
    direction: Direction

    def __post_init__(self) -> None:
        if self.direction not in ("higher_is_better", "lower_is_better"):
            raise ValueError(
                f"direction must be 'lower_is_better' or 'higher_is_better', got {self.direction!r}"
            )

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "higher_is_better"

    def key(self, value: float) -> float:
        """A sort key where larger is better."""
        return value if self.higher_is_better else -value

    def value(self, metrics: Mapping[str, Any] | None) -> float | None:
        """The rule's metric in ``metrics`` as a float; None when absent or NaN (not rankable)."""
        if not metrics:
            return None
        value = metrics.get(self.metric)
        if value is None or isinstance(value, bool):
            return None
        value = float(value)
        return None if math.isnan(value) else value

    def best(self, candidates: Iterable[tuple[T, int, Mapping[str, Any] | None]]) -> T | None:
        """The best of ``(item, step, metrics)`` candidates; None when none has a rankable value."""
        scored = [(self.key(v), step, item) for item, step, metrics in candidates if (v := self.value(metrics)) is not None]
        if not scored:
            return None
        return max(scored, key=lambda s: (s[0], s[1]))[2]

    def compare_fn(self) -> Callable[..., bool]:
        """``compare_fn(best_eval_result, current_eval_result)``: the current one is strictly better.

        Raises ValueError when either result lacks the metric, as tf.estimator's compare functions do.
        """
        metric, higher = self.metric, self.higher_is_better

        def compare(best_eval_result: Mapping[str, Any], current_eval_result: Mapping[str, Any]) -> bool:
            for which, result in (
                ("best_eval_result", best_eval_result),
                ("current_eval_result", current_eval_result),
            ):
                if not result or metric not in result:
                    raise ValueError(f"{which} cannot be empty or lack {metric!r}")
            if higher:
                return current_eval_result[metric] > best_eval_result[metric]
            return current_eval_result[metric] < best_eval_result[metric]

        compare.__name__ = f"{metric}_{'larger' if higher else 'smaller'}"
        return compare

    def words(self) -> str:
        return f"{self.metric} ({self.direction.replace('_', ' ')})"


# tf.estimator's BestExporter default: lower loss is better.
DEFAULT_RANKING = RankingRule("loss", "lower_is_better")


def change_rule(thresholds: Sequence[Threshold]) -> RankingRule | None:
    """The first change threshold's metric and direction; None when no change threshold is configured."""
    rule = next((t for t in thresholds if t.change is not None), None)
    return None if rule is None else RankingRule(rule.metric, rule.change.direction)  # type: ignore[union-attr]


def rule_for(thresholds: Sequence[Threshold]) -> RankingRule:
    """The ranking rule of a config's ``evaluation.thresholds``: its change rule, else lower loss."""
    return change_rule(thresholds) or DEFAULT_RANKING
