"""What a SavedModel's serve graph accepts: its signatures, their tensors, and the tf.Example features parsed.

Read from ``saved_model.pb`` alone (no session, no variables), so building and linting warmup requests
costs nothing next to loading the model. Knowing which string inputs feed a ParseExample op tells a
parsing receiver (send serialized tf.Examples) from a raw one (send tensors), and the op's attributes
give the feature spec that JSON instances and eval examples must fit.
"""

from __future__ import annotations

import dataclasses
import math

from components.export.errors import ExportError
from components.export.savedmodel.verify import read_saved_model_proto
from components.warmup.errors import WarmupError

SERVE_TAG = "serve"
DEFAULT_SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
METHOD_KINDS = {PREDICT_METHOD: "predict", CLASSIFY_METHOD: "classify", REGRESS_METHOD: "regress"}
_PARSE_OPS = {"ParseExample", "ParseExampleV2"}


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """One signature input or output: its graph tensor, dtype (a ``DataType`` enum value) and shape."""

    key: str
    name: str
    dtype: int
    shape: tuple[int, ...] | None  # None: unknown rank; -1: unknown dimension

    @property
    def dtype_name(self) -> str:
        return dtype_name(self.dtype)

    @property
    def shape_text(self) -> str:
        return shape_text(self.shape)


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """One tf.Example feature a ParseExample op reads."""

    key: str
    dtype: int  # DT_FLOAT, DT_INT64 or DT_STRING
    kind: str  # "dense", "sparse" or "ragged"
    shape: tuple[int, ...] = ()  # dense only
    required: bool = False  # dense without a default value

    @property
    def list_kind(self) -> str:
        return {1: "float_list", 9: "int64_list", 7: "bytes_list"}.get(self.dtype, dtype_name(self.dtype))

    @property
    def values(self) -> int | None:
        """How many values a dense feature holds; None when the shape has an unknown dimension."""
        if self.kind != "dense" or any(d < 0 for d in self.shape):
            return None
        return math.prod(self.shape)


@dataclasses.dataclass(frozen=True)
class SignatureSpec:
    name: str
    method: str
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]
    # input key -> features parsed from it, for string inputs that feed a ParseExample op
    parsed: dict[str, tuple[FeatureSpec, ...]] = dataclasses.field(default_factory=dict)

    @property
    def kind(self) -> str:
        """The request kind TF Serving answers with this signature (other methods take Predict)."""
        return METHOD_KINDS.get(self.method, "predict")

    @property
    def example_input(self) -> str | None:
        """The key of the single serialized-tf.Example input, when that is all the signature takes."""
        if len(self.inputs) == 1 and set(self.parsed) == set(self.inputs):
            return next(iter(self.inputs))
        return None


@dataclasses.dataclass(frozen=True)
class ServingGraph:
    """The serve MetaGraph of one SavedModel directory."""

    export_dir: str
    signatures: dict[str, SignatureSpec]

    def signature(self, name: str) -> SignatureSpec:
        try:
            return self.signatures[name or DEFAULT_SIGNATURE]
        except KeyError:
            raise WarmupError(
                f"{self.export_dir} has no serving signature {name!r}; it has {sorted(self.signatures)}"
            ) from None


def has_serve_graph(export_dir: str) -> bool:
    return _serve_meta_graph(_read_proto(export_dir)) is not None


def read_serving_graph(export_dir: str) -> ServingGraph:
    proto = _read_proto(export_dir)
    meta_graph = _serve_meta_graph(proto)
    if meta_graph is None:
        tags = [sorted(m.meta_info_def.tags) for m in proto.meta_graphs]
        raise WarmupError(
            f"{export_dir} has no MetaGraph tagged exactly [{SERVE_TAG!r}] (it has {tags}); TF Serving "
            "loads that tag set by default"
        )
    nodes = {node.name: node for node in meta_graph.graph_def.node}
    parsed_by_node = _parsed_features(nodes)
    signatures = {}
    for name, sig in meta_graph.signature_def.items():
        inputs = {k: _tensor_spec(k, v) for k, v in sig.inputs.items()}
        parsed = {
            k: parsed_by_node[_node_name(t.name)]
            for k, t in inputs.items()
            if _node_name(t.name) in parsed_by_node
        }
        signatures[name] = SignatureSpec(
            name=name,
            method=sig.method_name,
            inputs=inputs,
            outputs={k: _tensor_spec(k, v) for k, v in sig.outputs.items()},
            parsed=parsed,
        )
    return ServingGraph(export_dir, signatures)


def _serve_meta_graph(proto):
    """The MetaGraph TF Serving loads by default: the one whose tag set is exactly ``{"serve"}``."""
    return next((m for m in proto.meta_graphs if set(m.meta_info_def.tags) == {SERVE_TAG}), None)


def _read_proto(export_dir: str):
    try:
        return read_saved_model_proto(export_dir)
    except (ExportError, OSError) as exc:
        raise WarmupError(f"cannot read the SavedModel in {export_dir}: {exc}") from exc


def dtype_name(dtype: int) -> str:
    from tensorflow.core.framework import types_pb2

    try:
        return types_pb2.DataType.Name(dtype)
    except ValueError:
        return f"dtype {dtype}"


def shape_text(shape: tuple[int, ...] | None) -> str:
    if shape is None:
        return "any shape"
    return "[" + ", ".join("None" if d < 0 else str(d) for d in shape) + "]"


def _tensor_spec(key: str, info) -> TensorSpec:
    shape = None if info.tensor_shape.unknown_rank else tuple(d.size for d in info.tensor_shape.dim)
    return TensorSpec(key=key, name=info.name, dtype=info.dtype, shape=shape)


def _node_name(tensor: str) -> str:
    return tensor.lstrip("^").split(":")[0]


def _source(nodes: dict, name: str) -> str:
    """Follow Identity ops back to the node that produces ``name``."""
    seen = set()
    while name in nodes and nodes[name].op == "Identity" and name not in seen:
        seen.add(name)
        name = _node_name(nodes[name].input[0])
    return name


def _parsed_features(nodes: dict) -> dict[str, tuple[FeatureSpec, ...]]:
    """Placeholder node name -> features of the ParseExample op it feeds."""
    out: dict[str, tuple[FeatureSpec, ...]] = {}
    for node in nodes.values():
        if node.op in _PARSE_OPS and node.input:
            features = _example_features(node, nodes)
            if features is not None:
                out[_source(nodes, _node_name(node.input[0]))] = features
    return out


def _example_features(node, nodes: dict) -> tuple[FeatureSpec, ...] | None:
    """The features a ParseExample(V2) op reads, or None when its keys are not constants."""
    attr = node.attr
    dense_types = list(attr["Tdense"].list.type)
    dense_shapes = [tuple(d.size for d in s.dim) for s in attr["dense_shapes"].list.shape]
    sparse_types = list(attr["sparse_types"].list.type)
    if node.op == "ParseExampleV2":
        # inputs: serialized, names, sparse_keys, dense_keys, ragged_keys, dense_defaults...
        keys = [_const_strings(nodes, node.input[i]) for i in (2, 3, 4)]
        if any(k is None for k in keys):
            return None
        sparse_keys, dense_keys, ragged_keys = keys
        defaults = node.input[5 : 5 + len(dense_keys)]
        ragged_types = list(attr["ragged_value_types"].list.type)
    else:
        # inputs: serialized, names, sparse_keys[Nsparse], dense_keys[Ndense], dense_defaults[Ndense]
        n_sparse, n_dense = attr["Nsparse"].i, attr["Ndense"].i
        sparse_keys = [_const_strings(nodes, i) for i in node.input[2 : 2 + n_sparse]]
        dense_keys = [_const_strings(nodes, i) for i in node.input[2 + n_sparse : 2 + n_sparse + n_dense]]
        if any(k is None or len(k) != 1 for k in [*sparse_keys, *dense_keys]):
            return None
        sparse_keys, dense_keys = [k[0] for k in sparse_keys], [k[0] for k in dense_keys]
        defaults = node.input[2 + n_sparse + n_dense :]
        ragged_keys, ragged_types = [], []
    features = [
        FeatureSpec(key, dtype, "dense", shape, required=_is_empty_const(nodes, default))
        for key, dtype, shape, default in zip(dense_keys, dense_types, dense_shapes, defaults)
    ]
    features += [FeatureSpec(k, t, "sparse") for k, t in zip(sparse_keys, sparse_types)]
    features += [FeatureSpec(k, t, "ragged") for k, t in zip(ragged_keys, ragged_types)]
    return tuple(features)


def _const_strings(nodes: dict, tensor: str) -> list[str] | None:
    node = nodes.get(_source(nodes, _node_name(tensor)))
    if node is None or node.op != "Const":
        return None
    return [v.decode("utf-8", "replace") for v in node.attr["value"].tensor.string_val]


def _is_empty_const(nodes: dict, tensor: str) -> bool:
    node = nodes.get(_source(nodes, _node_name(tensor)))
    if node is None or node.op != "Const":
        return False
    shape = node.attr["value"].tensor.tensor_shape
    return any(d.size == 0 for d in shape.dim)
