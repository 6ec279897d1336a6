"""Monolith's ``StandaloneExporter``: one serving SavedModel, with model_fn built inside an ExportContext.

``StandaloneExporter(model_fn, model_dir, export_dir_base, shared_embedding=False, warmup_file=None)``
and ``export_saved_model(serving_input_receiver_fn, checkpoint_path=None, global_step=None)`` keep
Monolith's signature. ``shared_embedding=True`` places the checkpoint's files as ``variables/`` (variables
by reference) instead of restoring and saving them. Versions are the global step (given, or the
checkpoint's), not a timestamp, so a rerun finds its own export.
"""

from __future__ import annotations

import abc
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from components.export.compat.export_context import ExportContext, ExportMode, enter_export_mode
from components.export.errors import ExportContextError, ExportContractError, MissingCheckpointError
from components.export.savedmodel.assets import copy_assets_extra, normalize_assets_extra
from components.export.savedmodel.mode_graphs import (
    ModeGraph,
    ModelFnCall,
    build_mode_graph,
    estimator_model_fn,
    predict_signature,
    write_saved_model,
)
from components.export.savedmodel.verify import VerifyDepth
from components.export.savedmodel.versions import Written, choose_version, write_version
from components.layout import WARMUP_FILE

log = logging.getLogger(__name__)


class ContextExporter(abc.ABC):
    """What the Standalone and Distributed exporters share (Monolith's ``BaseExporter``)."""

    def __init__(
        self,
        model_fn: Callable[..., Any],
        model_dir: str,
        export_dir_base: str,
        shared_embedding: bool = False,
        warmup_file: str | None = None,
        *,
        params: Mapping[str, Any] | None = None,
        verify: VerifyDepth = "full",
        strip_default_attrs: bool = True,
        as_text: bool = False,
        assets_extra: Mapping[str, str] | None = None,
    ) -> None:
        if not callable(model_fn):
            raise ExportContractError(f"model_fn must be a function, got {model_fn!r}")
        self._raw_model_fn = model_fn
        self._model_dir = os.fspath(model_dir)
        self._export_dir_base = os.fspath(export_dir_base)
        self._shared_embedding = bool(shared_embedding)
        self._warmup_file = os.fspath(warmup_file) if warmup_file else None
        self._params = dict(params or {})
        self._verify = verify
        self._strip_default_attrs = bool(strip_default_attrs)
        self._as_text = bool(as_text)
        self._assets_extra = normalize_assets_extra(assets_extra)

    @property
    def export_dir_base(self) -> str:
        return self._export_dir_base

    def _model_fn_call(self) -> tuple[ModelFnCall, int | None]:
        """model_fn with params and RunConfig bound the way tf.estimator binds them."""
        import tensorflow as tf

        estimator = tf.estimator.Estimator(
            model_fn=self._raw_model_fn, model_dir=self._model_dir, params=self._params or None
        )  # None, not {}: tf.estimator refuses params for a model_fn that takes none
        return estimator_model_fn(estimator), estimator.config.tf_random_seed

    def checkpoint(self, checkpoint_path: str | None) -> str:
        import tensorflow as tf

        found = checkpoint_path or tf.train.latest_checkpoint(self._model_dir)
        if not found:
            raise MissingCheckpointError(f"no checkpoint_path given and no checkpoint in {self._model_dir}")
        return os.fspath(found)

    def warmup_assets(self) -> dict[str, str]:
        """``assets_extra`` plus the warmup file (as ``tf_serving_warmup_requests``) for the serving graph."""
        if not self._warmup_file:
            return dict(self._assets_extra)
        if not os.path.isfile(self._warmup_file):
            raise ExportContractError(f"warmup_file {self._warmup_file} does not exist")
        if WARMUP_FILE in self._assets_extra:
            raise ExportContractError(
                f"assets_extra key {WARMUP_FILE!r} collides with warmup_file; give one of them"
            )
        return {**self._assets_extra, WARMUP_FILE: self._warmup_file}

    def version(self, checkpoint: str, global_step: int | None) -> str:
        return choose_version(self._export_dir_base, checkpoint, global_step=global_step)

    @abc.abstractmethod
    def write_into(
        self, out_dir: str, serving_input_receiver_fn: Callable[[], Any], checkpoint_path: str, version: str
    ) -> Written:
        """Write the export of ``checkpoint_path`` into ``out_dir`` (no versioning, no rename)."""

    @abc.abstractmethod
    def export_saved_model(
        self,
        serving_input_receiver_fn: Callable[[], Any],
        checkpoint_path: str | None = None,
        global_step: int | None = None,
    ) -> Any:
        """Export and return what was written."""


def merge_context_signatures(mode_graph: ModeGraph, ctx: ExportContext) -> None:
    """Add the signatures model_fn registered for this graph; a name clash with an export output is an error."""
    for signature in ctx.signatures(mode_graph.graph):
        if signature.name in mode_graph.signature_def_map:
            raise ExportContextError(
                f"signature {signature.name!r} registered in the export context clashes with model_fn's "
                "export_outputs; rename one of them"
            )
        with mode_graph.graph.as_default():
            mode_graph.signature_def_map[signature.name] = predict_signature(
                signature.inputs, signature.outputs
            )


class StandaloneExporter(ContextExporter):
    """One serving SavedModel at ``<export_dir_base>/<version>/``."""

    def write_into(self, out_dir, serving_input_receiver_fn, checkpoint_path, version):
        import tensorflow as tf

        call, seed = self._model_fn_call()
        with enter_export_mode(ExportMode.STANDALONE) as ctx:
            mode_graph = build_mode_graph(
                call, serving_input_receiver_fn, tf.estimator.ModeKeys.PREDICT, seed=seed
            )
            merge_context_signatures(mode_graph, ctx)
            if ctx.sub_graphs or ctx.dense_sub_graphs:
                log.warning(
                    "model_fn built sub-graphs %s in a standalone export; only the main graph is exported",
                    sorted({**ctx.sub_graphs, **ctx.dense_sub_graphs}),
                )
        outcome = write_saved_model(
            out_dir,
            [mode_graph],
            checkpoint_path,
            by_reference=self._shared_embedding,
            strip_default_attrs=self._strip_default_attrs,
            as_text=self._as_text,
        )
        copy_assets_extra(out_dir, self.warmup_assets())
        return Written(layout="single", variables=outcome.method, fallback_reason=outcome.fallback_reason)

    def export_saved_model(self, serving_input_receiver_fn, checkpoint_path=None, global_step=None) -> str:
        """Export and return the version folder."""
        checkpoint = self.checkpoint(checkpoint_path)
        version = self.version(checkpoint, global_step)
        outcome = write_version(
            self._export_dir_base,
            version,
            lambda out: self.write_into(out, serving_input_receiver_fn, checkpoint, version),
            verify=self._verify,
            label="standalone",
        )
        return outcome.path
