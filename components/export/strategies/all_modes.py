"""All-modes export (``export_all_saved_models``): TRAIN, EVAL and PREDICT graphs in one SavedModel."""

from __future__ import annotations

import os
import shutil

from components.estimator import build_estimator
from components.export.errors import ExportError
from components.export.strategies.base import PipelineStrategy, StrategyContext


class AllModesStrategy(PipelineStrategy):
    """One SavedModel with tags ``train``/``eval``/``serve`` for the receivers the config names."""

    def write(self, ctx: StrategyContext, export_dir: str) -> None:
        import tensorflow as tf

        receivers = ctx.config.receivers
        receiver_map = {tf.estimator.ModeKeys.PREDICT: receivers.predict.resolve()}
        if receivers.train is not None:
            receiver_map[tf.estimator.ModeKeys.TRAIN] = receivers.train.resolve()
        if receivers.eval is not None:
            receiver_map[tf.estimator.ModeKeys.EVAL] = receivers.eval.resolve()
        estimator = build_estimator(ctx.config, ctx.work_dir)
        base = f"{export_dir}.base"
        try:
            written = estimator.experimental_export_all_saved_models(
                base, receiver_map, checkpoint_path=ctx.checkpoint_path
            )
        except Exception as exc:  # the user's model_fn and receivers can raise anything
            shutil.rmtree(base, ignore_errors=True)
            raise ExportError(
                f"strategy {self.name!r}: exporting {ctx.checkpoint_path} failed: {type(exc).__name__}: {exc}"
            ) from exc
        os.replace(os.fsdecode(written), export_dir)
        shutil.rmtree(base, ignore_errors=True)
