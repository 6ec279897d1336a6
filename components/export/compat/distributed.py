"""Monolith's ``DistributedExporter``: one SavedModel per graph the ExportContext collected, one version.

Graphs: ``entry`` (model_fn's graph; embedding lookups replaced by routing and placeholders), one
``ps_<i>`` per embedding shard with a ``lookup_<table>`` signature, and any dense sub-graphs model_fn
registered. The set is written kept together (``<version>/<graph>/`` + ``export_set.json``), verified,
then moved into its served form, one TF Serving model per graph: ``<base>/<graph>/<version>/``, plus
``<base>/export_sets/<version>.json`` naming the set (written last). The pipeline's strategy keeps it
together until publication. Both forms and the mapping between them are components/layout.py's.

Options, as in Monolith: ``include_graphs`` exports only the graphs named; ``dense_only`` skips the
``ps_<i>`` graphs (entry and dense graphs only); ``global_step_as_timestamp`` names the version after the
global step so parallel exporters of one checkpoint agree (the step is read from the checkpoint when not
given); ``clear_entry_devices`` strips device placements from the entry graph; ``allow_gpu=False`` pins
any op model_fn placed on a GPU to the CPU; ``with_remote_gpu`` is handed to model_fn through
``ExportContext.with_remote_gpu``. ``shared_embedding=True`` places variables by reference in every graph.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from components.export.compat.export_context import (
    ROUTE_SIGNATURE,
    ExportContext,
    ExportMode,
    enter_export_mode,
)
from components.export.compat.standalone import ContextExporter, merge_context_signatures
from components.export.errors import ExportContextError, ExportContractError
from components.export.savedmodel.assets import copy_assets_extra
from components.export.savedmodel.mode_graphs import (
    ModeGraph,
    build_mode_graph,
    plain_mode_graph,
    predict_signature,
    write_saved_model,
)
from components.export.savedmodel.verify import write_set_manifest
from components.export.savedmodel.versions import Written, choose_version, write_set_version
from components.layout import ENTRY_GRAPH, SAVED_MODEL_PB

log = logging.getLogger(__name__)
_CPU = "/device:CPU:0"


class DistributedExporter(ContextExporter):
    """Entry, parameter-server and dense graphs as SavedModels sharing one version."""

    def __init__(
        self,
        model_fn: Callable[..., Any],
        model_dir: str,
        export_dir_base: str,
        shared_embedding: bool = False,
        warmup_file: str | None = None,
        dense_only: bool = False,
        allow_gpu: bool = False,
        with_remote_gpu: bool = False,
        clear_entry_devices: bool = False,
        include_graphs: Sequence[str] | None = None,
        global_step_as_timestamp: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(model_fn, model_dir, export_dir_base, shared_embedding, warmup_file, **options)
        if include_graphs is not None and (
            isinstance(include_graphs, str) or not all(isinstance(g, str) for g in include_graphs)
        ):
            raise ExportContractError(f"include_graphs must be a list of graph names, got {include_graphs!r}")
        self._dense_only = bool(dense_only)
        self._allow_gpu = bool(allow_gpu)
        self._with_remote_gpu = bool(with_remote_gpu)
        self._clear_entry_devices = bool(clear_entry_devices)
        self._include_graphs = list(include_graphs) if include_graphs is not None else None
        self._global_step_as_timestamp = bool(global_step_as_timestamp)

    def collect_graphs(
        self, serving_input_receiver_fn: Callable[[], Any]
    ) -> tuple[dict[str, ModeGraph], ExportContext]:
        """Run model_fn in distributed export mode; every graph it produced, by name, in export order."""
        import tensorflow as tf

        call, seed = self._model_fn_call()
        ctx = ExportContext(with_remote_gpu=self._with_remote_gpu)
        with enter_export_mode(ExportMode.DISTRIBUTED, ctx):
            entry = build_mode_graph(
                call,
                serving_input_receiver_fn,
                tf.estimator.ModeKeys.PREDICT,
                seed=seed,
                remote_inputs=lambda: {r.key: r.embeddings for r in ctx.remote_lookups},
            )
            _add_route_signature(entry, ctx)
            merge_context_signatures(entry, ctx)
            graphs: dict[str, ModeGraph] = {}
            for name, graph in ctx.dense_sub_graphs.items():
                graphs[name] = self._sub_graph(name, graph, ctx)
            if not self._dense_only:
                for name, graph in ctx.sub_graphs.items():
                    graphs[name] = self._sub_graph(name, graph, ctx)
            graphs[ENTRY_GRAPH] = entry
        if self._include_graphs is not None:
            available = sorted(graphs) + (sorted(ctx.sub_graphs) if self._dense_only else [])
            unknown = sorted(set(self._include_graphs) - set(available))
            if unknown:
                raise ExportContractError(
                    f"include_graphs names {unknown}, which model_fn did not build; graphs: {available}"
                )
            graphs = {name: g for name, g in graphs.items() if name in self._include_graphs}
        if not graphs:
            raise ExportContractError(
                "no graph left to export: include_graphs and dense_only exclude them all"
            )
        return graphs, ctx

    @staticmethod
    def _sub_graph(name: str, graph: Any, ctx: ExportContext) -> ModeGraph:
        signatures = ctx.signatures(graph)
        if not signatures:
            raise ExportContextError(
                f"sub-graph {name!r} has no signature; add one with ctx.add_signature(graph, ...)"
            )
        with graph.as_default():
            signature_map = {s.name: predict_signature(s.inputs, s.outputs) for s in signatures}
        return plain_mode_graph(graph, signature_map, ["serve"])

    def write_into(self, out_dir, serving_input_receiver_fn, checkpoint_path, version):
        graphs, ctx = self.collect_graphs(serving_input_receiver_fn)
        methods, reasons, folders = [], [], {}
        for name, mode_graph in graphs.items():
            target = os.path.join(out_dir, name)
            outcome = write_saved_model(
                target,
                [mode_graph],
                checkpoint_path,
                by_reference=self._shared_embedding,
                strip_default_attrs=self._strip_default_attrs,
                as_text=self._as_text,
                clear_devices=self._clear_entry_devices and name == ENTRY_GRAPH,
            )
            if not self._allow_gpu:
                pinned = pin_gpu_ops_to_cpu(target)
                if pinned:
                    log.info(
                        "graph %s: %d ops placed on a GPU pinned to the CPU (allow_gpu=False)", name, pinned
                    )
            if name == ENTRY_GRAPH:
                copy_assets_extra(target, self.warmup_assets())
            folders[name] = name
            methods.append(outcome.method)
            if outcome.fallback_reason:
                reasons.append(f"{name}: {outcome.fallback_reason}")
        lookups = [
            {
                "table": r.table,
                "shard": r.shard,
                "graph": r.graph,
                "route_output": r.key,
                "entry_input": r.key,
            }
            for r in ctx.remote_lookups
            if r.graph in folders
        ]
        write_set_manifest(
            out_dir, layout="distributed", version=version, graphs=folders, extra={"remote_lookups": lookups}
        )
        variables = methods[0] if len(set(methods)) == 1 else "mixed"
        return Written(
            layout="distributed",
            graphs=folders,
            variables=variables,
            fallback_reason="; ".join(reasons) or None,
        )

    def version(self, checkpoint: str, global_step: int | None) -> str:
        if self._global_step_as_timestamp:
            return choose_version(self._export_dir_base, checkpoint, global_step=global_step)
        return choose_version(self._export_dir_base, scheme="timestamp")

    def export_saved_model(
        self, serving_input_receiver_fn, checkpoint_path=None, global_step=None
    ) -> dict[str, str]:
        """Export every graph and return ``{graph: version folder}``."""
        checkpoint = self.checkpoint(checkpoint_path)
        version = self.version(checkpoint, global_step)
        return write_set_version(
            self._export_dir_base,
            version,
            lambda out: self.write_into(out, serving_input_receiver_fn, checkpoint, version),
            verify=self._verify,
            last=(ENTRY_GRAPH,),
            label="distributed",
        )


def _add_route_signature(entry: ModeGraph, ctx: ExportContext) -> None:
    """The entry graph's ``route`` signature: receiver inputs in, the ids each shard must look up out."""
    lookups = ctx.remote_lookups
    if not lookups:
        return
    if ROUTE_SIGNATURE in entry.signature_def_map:
        raise ExportContextError(
            f"model_fn's export_outputs use the reserved signature name {ROUTE_SIGNATURE!r}"
        )
    with entry.graph.as_default():
        entry.signature_def_map[ROUTE_SIGNATURE] = predict_signature(
            entry.receiver_tensors, {r.key: r.ids for r in lookups}
        )


def pin_gpu_ops_to_cpu(export_dir: str) -> int:
    """Rewrite GPU device placements in ``saved_model.pb`` to the CPU; return how many nodes changed."""
    from components.export.savedmodel.verify import read_saved_model_proto

    path = os.path.join(export_dir, SAVED_MODEL_PB)
    if not os.path.exists(path):
        return 0  # as_text exports are not rewritten
    proto = read_saved_model_proto(export_dir)
    changed = 0
    for meta_graph in proto.meta_graphs:
        nodes = list(meta_graph.graph_def.node)
        for function in meta_graph.graph_def.library.function:
            nodes.extend(function.node_def)
        for node in nodes:
            if "GPU" in node.device.upper():
                node.device = _CPU
                changed += 1
    if changed:
        tmp = f"{path}.tmp"
        with open(tmp, "wb") as handle:
            handle.write(proto.SerializeToString())
        os.replace(tmp, path)
    return changed
