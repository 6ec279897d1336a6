"""Warmup for a distributed export: the entry graph takes the rows its ps graphs look up.

In a DistributedExporter set the entry graph's serving signatures take, besides the receiver's inputs, one
input per embedding shard (``<table>/ps_<i>``); a serving router fills them by running ``route`` on the
entry graph, then ``lookup_<table>`` on each ``ps_<i>`` graph, then the entry signature. Warmup requests
are built the same way — the receiver part from the configured source, the rest by running that route
and those lookups on the exported graphs themselves (``export_set.json`` names the wiring) — so the entry
graph is warmed with exactly what the router will send, and a ps graph asked for in ``warmup.graphs`` with
the ids the router will send it.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Sequence
from typing import Any, Self

from components.artifacts import ExportArtifact
from components.export.errors import VerificationError
from components.export.savedmodel.verify import read_set_manifest
from components.warmup.errors import WarmupError
from components.warmup.replay import serving_session
from components.warmup.signatures import ServingGraph, SignatureSpec, read_serving_graph

ROUTE_SIGNATURE = "route"  # as components.export.compat.export_context names it


@dataclasses.dataclass(frozen=True)
class RemoteLookup:
    table: str
    graph: str  # the ps graph holding the shard
    route_output: str  # output of the entry's route signature: the ids for this shard
    entry_input: str  # input of the entry's serving signatures: the rows looked up

    @property
    def signature(self) -> str:
        return f"lookup_{self.table}"


def remote_lookups(export: ExportArtifact) -> list[RemoteLookup]:
    """The shard wiring of a distributed set; empty for every other export."""
    if not export.graphs:
        return []
    try:
        manifest = read_set_manifest(export.uri)
    except VerificationError as exc:
        raise WarmupError(f"cannot read the export set of {export.uri}: {exc}") from exc
    entries = (manifest or {}).get("remote_lookups") or []
    keys = {"table", "graph", "route_output", "entry_input"}
    return [
        RemoteLookup(e["table"], e["graph"], e["route_output"], e["entry_input"])
        for e in entries
        if isinstance(e, dict) and keys <= set(e)
    ]


def needs_routing(graph: ServingGraph, signature: str, lookups: Sequence[RemoteLookup]) -> bool:
    inputs = graph.signature(signature).inputs
    return any(lookup.entry_input in inputs for lookup in lookups)


def receiver_graph(graph: ServingGraph, signature: str, lookups: Sequence[RemoteLookup]) -> ServingGraph:
    """``graph`` with ``signature`` reduced to the receiver's inputs, to build the requests' first part."""
    full = graph.signature(signature)
    routed = {lookup.entry_input for lookup in lookups}
    inputs = {k: v for k, v in full.inputs.items() if k not in routed}
    parsed = {k: v for k, v in full.parsed.items() if k in inputs}
    return dataclasses.replace(
        graph,
        signatures={**graph.signatures, full.name: dataclasses.replace(full, inputs=inputs, parsed=parsed)},
    )


class Router:
    """Runs the entry graph's route and each shard's lookup on loaded sessions, as a serving router would."""

    def __init__(self, export: ExportArtifact, entry: ServingGraph, lookups: Sequence[RemoteLookup]) -> None:
        self.export, self.entry, self.lookups = export, entry, list(lookups)
        self._stack = contextlib.ExitStack()
        self._shards: dict[str, tuple[Any, SignatureSpec]] = {}  # entry input -> (session, lookup signature)

    def __enter__(self) -> Self:
        self.route = self.entry.signatures.get(ROUTE_SIGNATURE)
        if self.route is None:
            raise WarmupError(
                f"{self.entry.export_dir} takes looked-up rows but has no {ROUTE_SIGNATURE!r} signature"
            )
        self._session, _ = self._stack.enter_context(serving_session(self.entry))
        for lookup in self.lookups:
            if lookup.graph not in self.export.graphs:
                raise WarmupError(f"the export set has no graph {lookup.graph!r} for table {lookup.table!r}")
            graph = read_serving_graph(self.export.graphs[lookup.graph])
            signature = graph.signatures.get(lookup.signature)
            if signature is None or len(signature.inputs) != 1 or len(signature.outputs) != 1:
                raise WarmupError(
                    f"graph {lookup.graph!r} needs a signature {lookup.signature!r} with one input (ids) and "
                    f"one output (rows); it has {sorted(graph.signatures)}"
                )
            session, _ = self._stack.enter_context(serving_session(graph))
            self._shards[lookup.entry_input] = (session, signature)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()

    def shard_ids(self, request) -> dict[str, Any]:
        """Entry input -> the ids ``route`` sends that shard, for one request's receiver inputs."""
        import tensorflow as tf

        feeds = {self.route.inputs[k].name: tf.make_ndarray(request.inputs[k]) for k in self.route.inputs}
        fetches = {
            lookup.entry_input: self.route.outputs[lookup.route_output].name for lookup in self.lookups
        }
        return self._session.run(fetches, feed_dict=feeds)

    def rows(self, entry_input: str, ids: Any) -> Any:
        session, signature = self._shards[entry_input]
        (ids_input,) = signature.inputs.values()
        (rows,) = signature.outputs.values()
        return session.run(rows.name, feed_dict={ids_input.name: ids})

    def with_rows(self, records: Sequence[bytes]) -> list[bytes]:
        """Each entry Predict record completed with the rows its shards return."""
        import tensorflow as tf

        def complete(log) -> None:
            request = log.predict_log.request
            for key, ids in self.shard_ids(request).items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(self.rows(key, ids)))

        return self._each(records, complete)

    def shard_requests(self, records: Sequence[bytes], graph: str, model_name: str) -> list[bytes]:
        """Lookup requests for one ps graph: the ids the entry's route sends it, per record that sends any."""
        import tensorflow as tf
        from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

        lookups = [lookup for lookup in self.lookups if lookup.graph == graph]
        out: list[bytes] = []

        def shard(log) -> None:
            ids = self.shard_ids(log.predict_log.request)
            for lookup in lookups:
                if not len(ids[lookup.entry_input]):
                    continue
                (key,) = self._shards[lookup.entry_input][1].inputs
                request = predict_pb2.PredictRequest(
                    model_spec=model_pb2.ModelSpec(name=model_name, signature_name=lookup.signature)
                )
                request.inputs[key].CopyFrom(tf.make_tensor_proto(ids[lookup.entry_input]))
                out.append(
                    prediction_log_pb2.PredictionLog(
                        predict_log=prediction_log_pb2.PredictLog(request=request)
                    ).SerializeToString()
                )

        self._each(records, shard)
        if not out:
            raise WarmupError(f"no warmup example routes any id to graph {graph!r}; add examples that do")
        return out

    def _each(self, records: Sequence[bytes], change) -> list[bytes]:
        import tensorflow as tf
        from tensorflow_serving.apis import prediction_log_pb2

        changed = []
        for index, record in enumerate(records):
            log = prediction_log_pb2.PredictionLog.FromString(record)
            try:
                change(log)
            except (tf.errors.OpError, KeyError, ValueError) as exc:
                raise WarmupError(
                    f"routing warmup request {index} through {ROUTE_SIGNATURE!r} and the shard lookups "
                    f"failed: {type(exc).__name__}: {getattr(exc, 'message', exc)}"
                ) from exc
            changed.append(log.SerializeToString())
        return changed
