"""Pipeline kind ``all_modes``: TRAIN, EVAL and PREDICT graphs of a checkpoint (see ``compat/export_all_saved_models.py``).

Params: ``layout`` (``combined`` | ``per_mode``), ``modes`` (a subset of ``train``/``eval``/``predict``;
default: every mode with a configured receiver), plus the common options.
"""

from __future__ import annotations

from typing import Any

from components.estimator import build_estimator
from components.export.compat.export_all_saved_models import write_all_modes
from components.export.errors import StrategyConfigError
from components.export.savedmodel.mode_graphs import estimator_model_fn
from components.export.savedmodel.versions import Written
from components.export.strategies.base import OptionsStrategy, StrategyContext
from components.export.strategies.options import AllModesOptions

_MODE_KEYS = {"train": "train", "eval": "eval", "predict": "infer"}


def receiver_map(ctx: StrategyContext, modes: tuple[str, ...] | None, strategy: str) -> dict[str, Any]:
    """``{ModeKeys: receiver_fn}`` for ``modes`` (default: every configured receiver)."""
    receivers = ctx.config.receivers
    configured = {"predict": receivers.predict, "train": receivers.train, "eval": receivers.eval}
    wanted = modes if modes is not None else tuple(m for m, path in configured.items() if path is not None)
    unknown = sorted(set(wanted) - set(_MODE_KEYS))
    if unknown or not wanted:
        raise StrategyConfigError(
            f"strategy {strategy!r}: modes must be a non-empty subset of {sorted(_MODE_KEYS)}, got {list(wanted)}"
        )
    missing = [m for m in wanted if configured[m] is None]
    if missing:
        raise StrategyConfigError(
            f"strategy {strategy!r} exports modes {missing} but receivers.{missing[0]} is not configured"
        )
    return {_MODE_KEYS[m]: configured[m].resolve() for m in wanted}


class AllModesStrategy(OptionsStrategy):
    """One SavedModel with tags ``train``/``eval``/``serve`` (or one per mode) for the configured receivers."""

    options_class = AllModesOptions

    def write(self, ctx: StrategyContext, export_dir: str) -> Written:
        options: AllModesOptions = self.options
        receivers = receiver_map(ctx, options.modes, self.name)
        estimator = build_estimator(ctx.config, ctx.work_dir)
        return write_all_modes(
            estimator_model_fn(estimator),
            export_dir,
            receivers,
            ctx.checkpoint_path,
            layout=options.layout,
            version=ctx.version,
            assets_extra=options.assets_extra,
            as_text=options.as_text,
            strip_default_attrs=options.strip_default_attrs,
            by_reference=options.by_reference,
            seed=estimator.config.tf_random_seed,
        )
