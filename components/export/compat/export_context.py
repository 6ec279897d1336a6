"""Monolith's ExportContext: model_fn learns whether and how it is being exported, and collects sub-graphs.

``enter_export_mode(mode, export_ctx=None)`` is a context manager (not nestable) that the Standalone and
Distributed exporters hold while model_fn builds; inside it ``is_exporting()``,
``is_exporting_standalone()``, ``is_exporting_distributed()`` and ``get_current_export_ctx()`` tell
model_fn what is going on, and the context collects named sub-graphs (``sub_graph`` for parameter-server
shards, ``dense_sub_graph`` for dense parts) with their signatures.

:func:`sharded_embedding` is the piece of model code that uses it: an embedding table split into
``num_shards`` variables ``<name>/part_<i>`` (id ``i`` lives in shard ``i % num_shards`` at row
``i // num_shards``). Training and standalone export look rows up locally. In a distributed export the
shards go to sub-graphs ``ps_<i>``, each with a ``lookup_<name>`` signature (``ids`` → ``embeddings``),
while the entry graph routes ids to shards (signature ``route``) and takes the looked-up rows as inputs
named ``<name>/ps_<i>``. A serving router runs ``route`` on the entry graph, ``lookup_<name>`` on each
shard, then the entry graph's serving signatures — the same answer as the standalone export.

State is per thread, so two exports in two threads do not see each other's mode.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from components.export.errors import ExportContextError
from components.export.savedmodel.folder_names import validate_name
from components.layout import ENTRY_GRAPH

ROUTE_SIGNATURE = "route"


class ExportMode(enum.Enum):
    NONE = 0
    STANDALONE = 1
    DISTRIBUTED = 2


@dataclasses.dataclass(frozen=True)
class SavedModelSignature:
    name: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class RemoteLookup:
    """One shard lookup the entry graph delegates: ids it routes out, rows it takes back in."""

    table: str
    shard: int
    graph: str  # the sub-graph serving this shard (ps_<i>)
    ids: Any  # entry-graph tensor: rows to look up in this shard
    embeddings: Any  # entry-graph placeholder: the rows looked up

    @property
    def key(self) -> str:
        return f"{self.table}/{self.graph}"


class ExportContext:
    """Sub-graphs and their signatures, collected while model_fn builds the export graph."""

    def __init__(self, with_remote_gpu: bool = False) -> None:
        self._sub_graphs: dict[str, Any] = {}
        self._dense_sub_graphs: dict[str, Any] = {}
        self._signatures: dict[int, dict[str, SavedModelSignature]] = {}
        self._remote_lookups: list[RemoteLookup] = []
        self.with_remote_gpu = bool(with_remote_gpu)

    def sub_graph(self, name: str) -> Any:
        """The parameter-server sub-graph ``name`` (created on first use)."""
        return self._get_graph(self._sub_graphs, self._dense_sub_graphs, name, "sub_graph")

    def dense_sub_graph(self, name: str) -> Any:
        """The dense sub-graph ``name`` (created on first use)."""
        return self._get_graph(self._dense_sub_graphs, self._sub_graphs, name, "dense_sub_graph")

    def _get_graph(self, own: dict[str, Any], other: dict[str, Any], name: str, kind: str) -> Any:
        import tensorflow as tf

        validate_name(name, f"{kind} name")
        if name == ENTRY_GRAPH or name in other:
            raise ExportContextError(
                f"{kind} name {name!r} is already used by {'the entry graph' if name == ENTRY_GRAPH else 'another kind of sub-graph'}; "
                "sub-graph names must be unique across sub_graph() and dense_sub_graph(), e.g. 'ps_0', 'dense_tower'"
            )
        if name not in own:
            own[name] = tf.Graph()
        return own[name]

    @property
    def sub_graphs(self) -> dict[str, Any]:
        return dict(self._sub_graphs)

    @property
    def dense_sub_graphs(self) -> dict[str, Any]:
        return dict(self._dense_sub_graphs)

    @property
    def sub_graph_num(self) -> int:
        return len(self._sub_graphs)

    def signatures(self, graph: Any) -> list[SavedModelSignature]:
        return list(self._signatures.get(id(graph), {}).values())

    def add_signature(
        self, graph: Any, name: str, inputs: Mapping[str, Any], outputs: Mapping[str, Any]
    ) -> None:
        """Register signature ``name`` of ``graph``; a second one with the same name is an error."""
        existing = self._signatures.setdefault(id(graph), {})
        if name in existing:
            raise ExportContextError(
                f"signature {name!r} is already defined for this graph; use merge_signature(graph, {name!r}, "
                "inputs, outputs) to add tensors to it, or pick another name"
            )
        existing[name] = SavedModelSignature(name, dict(inputs), dict(outputs))

    def merge_signature(
        self, graph: Any, name: str, inputs: Mapping[str, Any], outputs: Mapping[str, Any]
    ) -> None:
        """Add inputs and outputs to signature ``name`` of ``graph`` (created when missing)."""
        existing = self._signatures.setdefault(id(graph), {})
        current = existing.get(name, SavedModelSignature(name, {}, {}))
        for kind, old, new in (("input", current.inputs, inputs), ("output", current.outputs, outputs)):
            clash = sorted(k for k in new if k in old and old[k] is not new[k])
            if clash:
                raise ExportContextError(
                    f"signature {name!r} already has {kind}s {clash} bound to other tensors"
                )
        existing[name] = SavedModelSignature(
            name, {**current.inputs, **inputs}, {**current.outputs, **outputs}
        )

    def add_remote_lookup(self, lookup: RemoteLookup) -> None:
        if any(r.key == lookup.key for r in self._remote_lookups):
            raise ExportContextError(
                f"table {lookup.table!r} is looked up twice in {lookup.graph}; give each table its own name"
            )
        self._remote_lookups.append(lookup)

    @property
    def remote_lookups(self) -> list[RemoteLookup]:
        return list(self._remote_lookups)


class _State(threading.local):
    mode: ExportMode = ExportMode.NONE
    ctx: ExportContext | None = None


_state = _State()


def is_exporting() -> bool:
    return _state.mode is not ExportMode.NONE


def is_exporting_standalone() -> bool:
    return _state.mode is ExportMode.STANDALONE


def is_exporting_distributed() -> bool:
    return _state.mode is ExportMode.DISTRIBUTED


def get_current_export_ctx() -> ExportContext | None:
    return _state.ctx


@contextlib.contextmanager
def enter_export_mode(mode: ExportMode, export_ctx: ExportContext | None = None) -> Iterator[ExportContext]:
    """Build graphs in export ``mode`` with ``export_ctx`` (a fresh one when None); not nestable."""
    if not isinstance(mode, ExportMode) or mode is ExportMode.NONE:
        raise ExportContextError(
            f"mode must be ExportMode.STANDALONE or ExportMode.DISTRIBUTED, got {mode!r}"
        )
    if _state.mode is not ExportMode.NONE:
        raise ExportContextError(
            f"already exporting in {_state.mode.name} mode; export modes cannot be nested"
        )
    ctx = export_ctx if export_ctx is not None else ExportContext()
    _state.mode, _state.ctx = mode, ctx
    try:
        yield ctx
    finally:
        _state.mode, _state.ctx = ExportMode.NONE, None


# ------------------------------------------------------------------------------------------------
# A sharded embedding whose lookups go through the context.


def shard_rows(vocab_size: int, num_shards: int) -> list[int]:
    """Rows of each shard when id ``i`` lives in shard ``i % num_shards``."""
    return [(vocab_size - shard + num_shards - 1) // num_shards for shard in range(num_shards)]


class ShardedEmbedding:
    """An embedding table in ``num_shards`` variables; see the module docstring."""

    def __init__(
        self,
        name: str,
        vocab_size: int,
        dim: int,
        num_shards: int,
        *,
        dtype: Any = None,
        initializer: Any = None,
    ) -> None:
        import tensorflow as tf

        if num_shards < 1 or vocab_size < num_shards:
            raise ValueError(
                f"need 1 <= num_shards <= vocab_size, got {num_shards} shards for {vocab_size} ids"
            )
        self.name = name
        self.vocab_size, self.dim, self.num_shards = int(vocab_size), int(dim), int(num_shards)
        self.dtype = dtype or tf.float32
        self.initializer = initializer
        scope = tf.compat.v1.get_variable_scope().name
        self.full_name = f"{scope}/{name}" if scope else name
        self.ctx = get_current_export_ctx() if is_exporting_distributed() else None
        self.parts = None if self.ctx is not None else self._make_parts()

    def _make_parts(self) -> list[Any]:
        import tensorflow as tf

        return [
            tf.compat.v1.get_variable(
                f"{self.name}/part_{shard}",
                shape=[rows, self.dim],
                dtype=self.dtype,
                initializer=self.initializer,
            )
            for shard, rows in enumerate(shard_rows(self.vocab_size, self.num_shards))
        ]

    def lookup(self, ids: Any) -> Any:
        """``[batch, dim]`` rows for int64 ``ids`` of shape ``[batch]`` in ``[0, vocab_size)``."""
        import tensorflow as tf

        with tf.name_scope(f"{self.name}_lookup"):
            ids = tf.cast(tf.reshape(ids, [-1]), tf.int64)
            shard_of = tf.cast(tf.math.floormod(ids, self.num_shards), tf.int32)
            rows = tf.dynamic_partition(tf.math.floordiv(ids, self.num_shards), shard_of, self.num_shards)
            positions = tf.dynamic_partition(tf.range(tf.size(ids)), shard_of, self.num_shards)
            if self.ctx is None:
                found = [tf.gather(part, r) for part, r in zip(self.parts, rows)]
            else:
                found = [self._remote(shard, r) for shard, r in enumerate(rows)]
            return tf.reshape(tf.dynamic_stitch(positions, found), [-1, self.dim])

    def _remote(self, shard: int, rows: Any) -> Any:
        """Entry graph: a placeholder for the rows; shard graph ``ps_<shard>``: the variable and its lookup."""
        import tensorflow as tf

        graph_name = f"ps_{shard}"
        embeddings = tf.compat.v1.placeholder(self.dtype, [None, self.dim], name=f"{graph_name}_embeddings")
        self.ctx.add_remote_lookup(RemoteLookup(self.name, shard, graph_name, rows, embeddings))
        graph = self.ctx.sub_graph(graph_name)
        with graph.as_default():
            part = tf.compat.v1.get_variable(
                f"{self.full_name}/part_{shard}",
                shape=[shard_rows(self.vocab_size, self.num_shards)[shard], self.dim],
                dtype=self.dtype,
                initializer=self.initializer,
            )
            ids = tf.compat.v1.placeholder(tf.int64, [None], name=f"{self.name}_ids")
            looked_up = tf.gather(part, ids, name=f"{self.name}_embeddings")
            self.ctx.add_signature(graph, f"lookup_{self.name}", {"ids": ids}, {"embeddings": looked_up})
        return embeddings


def sharded_embedding(
    name: str, vocab_size: int, dim: int, num_shards: int, *, dtype: Any = None, initializer: Any = None
) -> ShardedEmbedding:
    """A :class:`ShardedEmbedding` in the current graph (or spread over ``ps_<i>`` when exporting distributed)."""
    return ShardedEmbedding(name, vocab_size, dim, num_shards, dtype=dtype, initializer=initializer)
