"""The manual-trigger form (Airflow Params, JSON schema) and its translation into run options.

The form can only *choose among configured things*: a checkpoint step, a subset of the configured
strategy names (an enum), and flags. It has no field that could carry an import path or a destination.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def build_params(strategy_names: Sequence[str]) -> dict[str, Any]:
    from airflow.sdk import Param

    names = list(strategy_names)
    return {
        "checkpoint": Param(
            None,
            type=["null", "integer"],
            minimum=0,
            title="Checkpoint step",
            description="Global step of one complete checkpoint to process; empty takes every new checkpoint.",
        ),
        "strategies": Param(
            names,
            type="array",
            items={"type": "string", "enum": names},
            uniqueItems=True,
            minItems=1,
            title="Export strategies",
            description="Which of the configured export strategies run.",
            examples=names,
        ),
        "force": Param(
            False,
            type="boolean",
            title="Force",
            description="Re-export and re-publish checkpoints that were already handled.",
        ),
        "dry_run": Param(
            False,
            type="boolean",
            title="Dry run",
            description="Discover, evaluate, export and warm up, but publish nothing.",
        ),
        "max_checkpoints": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            maximum=1000,
            title="Max checkpoints",
            description="Cap on checkpoints handled by this run; empty uses the config's discovery.max_per_run.",
        ),
    }


def run_options_from_params(params: Mapping[str, Any], strategy_names: Sequence[str]):
    """Validated ``RunOptions`` from a run's params (which Airflow already checked against the schema)."""
    from components.pipeline.options import RunOptions

    chosen = params.get("strategies")
    if chosen is not None:
        unknown = sorted(set(chosen) - set(strategy_names))
        if unknown:
            raise ValueError(f"unknown strategies {unknown}; configured: {list(strategy_names)}")
    return RunOptions(
        checkpoint=params.get("checkpoint"),
        strategies=tuple(chosen) if chosen is not None else None,
        force=bool(params.get("force", False)),
        dry_run=bool(params.get("dry_run", False)),
        max_checkpoints=params.get("max_checkpoints"),
    )


FORM_FIELDS = frozenset({"checkpoint", "strategies", "force", "dry_run", "max_checkpoints"})


def refuse_unknown_params(params: Mapping[str, Any]) -> None:
    """A trigger's conf may only fill the form's fields: anything else (an import path, a destination,
    a model_dir) is refused rather than silently ignored, so nobody believes it took effect."""
    unknown = sorted(set(params) - FORM_FIELDS)
    if unknown:
        raise ValueError(
            f"trigger conf has fields {unknown} that this DAG does not accept; allowed: {sorted(FORM_FIELDS)}. "
            "Code, model_dir and destination come only from the model's config file."
        )


def steps_from_asset_events(events: Mapping[Any, Any]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Every step named by every triggering asset event (coalesced events included), and the final ones.

    Training emits ``extra={"checkpoint": <prefix>, "step": <int>, "final": <bool>}``.
    """
    steps: set[int] = set()
    final: set[int] = set()
    for asset_events in events.values():
        for event in asset_events:
            extra = getattr(event, "extra", None) or {}
            step = extra.get("step")
            if isinstance(step, int) and not isinstance(step, bool) and step >= 0:
                steps.add(step)
                if extra.get("final") is True:
                    final.add(step)
    return tuple(sorted(steps)), tuple(sorted(final))
