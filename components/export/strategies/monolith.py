"""Pipeline kinds ``standalone`` and ``distributed``: Monolith's exporters over the config's model_fn.

``standalone`` writes one serving SavedModel; ``distributed`` writes the set ``<version>/<graph>/`` with
``export_set.json``, so the whole set appears (and later publishes) at once. Params: Monolith's options
(``shared_embedding`` is a synonym of ``by_reference``; ``warmup_file``; for ``distributed`` also
``dense_only``, ``allow_gpu``, ``with_remote_gpu``, ``clear_entry_devices``, ``include_graphs``) and the
common ones. Versions are the step: every exporter of a checkpoint agrees on it, which is what
Monolith's ``global_step_as_timestamp`` is for.
"""

from __future__ import annotations

import os

from components.estimator import model_fn_of
from components.export.compat.distributed import DistributedExporter
from components.export.compat.standalone import ContextExporter, StandaloneExporter
from components.export.savedmodel.versions import Written
from components.export.strategies.base import OptionsStrategy, StrategyContext
from components.export.strategies.options import DistributedOptions, StandaloneOptions


class StandaloneStrategy(OptionsStrategy):
    options_class = StandaloneOptions

    def shared_embedding(self) -> bool:
        options: StandaloneOptions = self.options
        return options.by_reference if options.shared_embedding is None else options.shared_embedding

    def exporter(self, ctx: StrategyContext, export_dir: str) -> ContextExporter:
        options: StandaloneOptions = self.options
        return StandaloneExporter(
            model_fn_of(ctx.config, ctx.work_dir),
            ctx.config.model_dir,
            os.path.dirname(export_dir),
            shared_embedding=self.shared_embedding(),
            warmup_file=options.warmup_file,
            params=ctx.config.params,
            verify=options.verify,
            strip_default_attrs=options.strip_default_attrs,
            as_text=options.as_text,
            assets_extra=options.assets_extra,
        )

    def write(self, ctx: StrategyContext, export_dir: str) -> Written:
        receiver = ctx.config.receivers.predict.resolve()
        return self.exporter(ctx, export_dir).write_into(
            export_dir, receiver, ctx.checkpoint_path, ctx.version
        )


class DistributedStrategy(StandaloneStrategy):
    options_class = DistributedOptions

    def exporter(self, ctx: StrategyContext, export_dir: str) -> ContextExporter:
        options: DistributedOptions = self.options
        return DistributedExporter(
            model_fn_of(ctx.config, ctx.work_dir),
            ctx.config.model_dir,
            os.path.dirname(export_dir),
            shared_embedding=self.shared_embedding(),
            warmup_file=options.warmup_file,
            dense_only=options.dense_only,
            allow_gpu=options.allow_gpu,
            with_remote_gpu=options.with_remote_gpu,
            clear_entry_devices=options.clear_entry_devices,
            include_graphs=options.include_graphs,
            global_step_as_timestamp=True,
            params=ctx.config.params,
            verify=options.verify,
            strip_default_attrs=options.strip_default_attrs,
            as_text=options.as_text,
            assets_extra=options.assets_extra,
        )
