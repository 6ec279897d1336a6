"""Build one export graph per mode from a model_fn and a receiver, and write MetaGraphs into a SavedModel.

This is tf.estimator's ``_add_meta_graph_for_mode`` made checkable and cheaper:

* receivers and EstimatorSpecs are checked with errors that name the mode and the missing piece;
* the checkpoint is compared with the graph by reading its ``.index`` (names, dtypes, shapes) before
  anything is restored, so a wrong checkpoint fails with the list of variables that do not match;
* only the first MetaGraph carries variables (restored and saved, or placed by reference); the others
  are checked against the checkpoint index instead of being restored again, one full restore per mode
  being what makes tf.estimator's all-modes export O(modes × size).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from components.errors import ExportflowError
from components.export.errors import CheckpointMismatchError, EstimatorSpecError, ReceiverMismatchError
from components.export.savedmodel.by_reference import (
    checkpoint_mismatches,
    graph_variable_specs,
    reference_blockers,
    reference_saver,
)
from components.export.savedmodel.estimator_spec import as_estimator_spec, check_estimator_spec, mode_label
from components.layout import VARIABLES_PREFIX, local_path

log = logging.getLogger(__name__)

#: ``(features, labels, mode) -> EstimatorSpec``: an Estimator's model_fn with its params and config bound.
ModelFnCall = Callable[[Any, Any, str], Any]


@dataclasses.dataclass
class ModeGraph:
    """One mode's graph, ready to become a MetaGraph (not frozen: it holds a live tf.Graph)."""

    mode: str
    tags: list[str]
    graph: Any
    signature_def_map: dict[str, Any]
    local_init_op: Any
    train_op: Any = None
    custom_saver: Any = None
    assets_collection: Any = None
    receiver_tensors: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class VariablesOutcome:
    """How the variables of a written SavedModel got there."""

    method: str  # "saved" (restore + save), "hardlink" or "copy" (by reference)
    fallback_reason: str | None = None  # why by-reference was asked for but not done


def estimator_model_fn(estimator: Any) -> ModelFnCall:
    """An Estimator's model_fn with its params and RunConfig bound, as tf.estimator calls it on export."""

    def call(features: Any, labels: Any, mode: str) -> Any:
        try:
            return estimator.model_fn(features, labels, mode, estimator.config)
        except ValueError as exc:
            if "should return an EstimatorSpec" in str(exc):  # tf.estimator's own check of the result
                raise EstimatorSpecError(
                    f"model_fn did not return a tf.estimator.EstimatorSpec in mode {mode_label(mode)}"
                ) from exc
            raise

    return call


def describe_features(features: Any) -> str:
    """``{'dense': float32[?,8], 'item_id': int64[?]}`` for error messages."""
    import tensorflow as tf

    if not isinstance(features, Mapping):
        features = {"<features>": features}
    parts = []
    for key, value in sorted(features.items(), key=lambda kv: str(kv[0])):
        if isinstance(value, tf.SparseTensor):
            parts.append(f"{key!r}: sparse {value.dtype.name}")
        elif hasattr(value, "dtype") and hasattr(value, "shape"):
            shape = (
                ",".join("?" if d is None else str(d) for d in value.shape.as_list())
                if value.shape.rank is not None
                else "*"
            )
            parts.append(f"{key!r}: {value.dtype.name}[{shape}]")
        else:
            parts.append(f"{key!r}: {type(value).__name__}")
    return "{" + ", ".join(parts) + "}"


def build_mode_graph(
    call_model_fn: ModelFnCall,
    receiver_fn: Callable[[], Any],
    mode: str,
    *,
    seed: int | None = None,
    receiver_name: str | None = None,
    graph: Any = None,
    remote_inputs: Callable[[], Mapping[str, Any]] | None = None,
) -> ModeGraph:
    """Call ``receiver_fn`` and ``model_fn`` in a fresh graph (or ``graph``) and build the signatures.

    ``remote_inputs`` (called after model_fn) names placeholders model_fn left to be fed from other
    graphs (a distributed export's looked-up embeddings); every signature then takes them as inputs
    and becomes a Predict signature.
    """
    import tensorflow as tf
    from tensorflow_estimator.python.estimator.export import export_lib

    modes = tf.estimator.ModeKeys
    name = receiver_name or getattr(receiver_fn, "__name__", repr(receiver_fn))
    graph = graph if graph is not None else tf.Graph()
    with graph.as_default():
        tf.compat.v1.train.get_or_create_global_step(graph)
        if seed is not None:
            tf.compat.v1.random.set_random_seed(seed)
        receiver = _call_receiver(receiver_fn, name, mode)
        labels = getattr(receiver, "labels", None)
        if mode in (modes.TRAIN, modes.EVAL) and labels is None:
            raise ReceiverMismatchError(
                f"receiver {name} for mode {mode_label(mode)} returned no labels; TRAIN and EVAL export need a "
                "SupervisedInputReceiver (features, labels, receiver_tensors)"
            )
        try:
            spec = call_model_fn(receiver.features, labels, mode)
        except ExportflowError:
            raise
        except Exception as exc:  # the user's model_fn meets the receiver's features here
            if _raised_by_estimator_spec(exc):
                raise EstimatorSpecError(
                    f"model_fn built an invalid EstimatorSpec for mode {mode_label(mode)}: {exc}"
                ) from exc
            raise ReceiverMismatchError(
                f"model_fn failed in mode {mode_label(mode)} on the features of receiver {name} "
                f"{describe_features(receiver.features)}: {type(exc).__name__}: {exc}. The receiver must "
                "provide every feature model_fn reads, with the dtype and shape it expects."
            ) from exc
        spec = as_estimator_spec(spec, mode)
        check_estimator_spec(spec, mode)
        try:
            export_outputs = export_lib.export_outputs_for_mode(
                mode=spec.mode,
                serving_export_outputs=spec.export_outputs,
                predictions=spec.predictions,
                loss=spec.loss,
                metrics=spec.eval_metric_ops,
            )
            extras = dict(remote_inputs()) if remote_inputs is not None else {}
            if extras:
                signature_def_map = _signatures_with_inputs(
                    _as_dict(receiver.receiver_tensors), export_outputs, extras
                )
            else:
                signature_def_map = export_lib.build_all_signature_defs(
                    receiver.receiver_tensors,
                    export_outputs,
                    getattr(receiver, "receiver_tensors_alternatives", None),
                    serving_only=mode == modes.PREDICT,
                )
        except ValueError as exc:
            raise EstimatorSpecError(f"cannot build signatures for mode {mode_label(mode)}: {exc}") from exc
        if not signature_def_map:
            raise EstimatorSpecError(
                f"no valid signature for mode {mode_label(mode)} from receiver {name}: every export output "
                "was rejected for these receiver tensors (a ClassificationOutput needs one string input)"
            )
        scaffold = spec.scaffold
        local_init_op = (
            scaffold.local_init_op
            if scaffold.local_init_op is not None
            else tf.compat.v1.train.Scaffold.default_local_init_op()
        )
        return ModeGraph(
            mode=mode,
            tags=list(export_lib.EXPORT_TAG_MAP[mode]),
            graph=graph,
            signature_def_map=signature_def_map,
            local_init_op=local_init_op,
            train_op=spec.train_op,
            custom_saver=scaffold.saver,
            assets_collection=tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.ASSET_FILEPATHS),
            receiver_tensors=_as_dict(receiver.receiver_tensors),
        )


def _signatures_with_inputs(
    receiver_tensors: Mapping[str, Any], export_outputs: Mapping[str, Any], extras: Mapping[str, Any]
) -> dict[str, Any]:
    import tensorflow as tf

    out = {}
    extra_infos = {k: tf.compat.v1.saved_model.build_tensor_info(v) for k, v in extras.items()}
    for key, export_output in export_outputs.items():
        try:
            signature = export_output.as_signature_def(receiver_tensors)
        except ValueError as exc:
            log.info("signature %r not exported: %s", key, exc)
            continue
        out[key] = predict_signature({**dict(signature.inputs), **extra_infos}, dict(signature.outputs))
    return out


def _as_dict(receiver_tensors: Any) -> dict[str, Any]:
    if isinstance(receiver_tensors, Mapping):
        return dict(receiver_tensors)
    return {"input": receiver_tensors}  # TensorServingInputReceiver's single tensor


def predict_signature(inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> Any:
    """A Predict-method SignatureDef from tensors (or TensorInfo protos)."""
    import tensorflow as tf
    from tensorflow.core.protobuf import meta_graph_pb2

    def info(value: Any) -> Any:
        return (
            value
            if isinstance(value, meta_graph_pb2.TensorInfo)
            else tf.compat.v1.saved_model.build_tensor_info(value)
        )

    return tf.compat.v1.saved_model.build_signature_def(
        inputs={k: info(v) for k, v in inputs.items()},
        outputs={k: info(v) for k, v in outputs.items()},
        method_name=tf.compat.v1.saved_model.PREDICT_METHOD_NAME,
    )


def plain_mode_graph(graph: Any, signature_def_map: Mapping[str, Any], tags: list[str]) -> ModeGraph:
    """A ModeGraph for a graph model_fn did not build through a receiver (context sub-graphs)."""
    import tensorflow as tf

    with graph.as_default():
        tf.compat.v1.train.get_or_create_global_step(graph)
        local_init_op = tf.compat.v1.train.Scaffold.default_local_init_op()
        return ModeGraph(
            mode="infer",
            tags=list(tags),
            graph=graph,
            signature_def_map=dict(signature_def_map),
            local_init_op=local_init_op,
            assets_collection=tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.ASSET_FILEPATHS),
        )


def _raised_by_estimator_spec(exc: BaseException) -> bool:
    """Whether ``exc`` comes from tf.estimator.EstimatorSpec's own validation (e.g. "Missing loss.")."""
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last = tb.tb_frame.f_code.co_filename
        tb = tb.tb_next
    return last is not None and last.replace(os.sep, "/").endswith(
        "tensorflow_estimator/python/estimator/model_fn.py"
    )


def _call_receiver(receiver_fn: Callable[[], Any], name: str, mode: str) -> Any:
    if not callable(receiver_fn):
        raise ReceiverMismatchError(
            f"the receiver for mode {mode_label(mode)} is {receiver_fn!r}, not a function"
        )
    try:
        receiver = receiver_fn()
    except ExportflowError:
        raise
    except Exception as exc:
        raise ReceiverMismatchError(
            f"receiver {name} for mode {mode_label(mode)} raised {type(exc).__name__}: {exc}"
        ) from exc
    if not hasattr(receiver, "features") or not hasattr(receiver, "receiver_tensors"):
        raise ReceiverMismatchError(
            f"receiver {name} for mode {mode_label(mode)} returned {type(receiver).__name__}; it must return a "
            "tf.estimator.export.ServingInputReceiver (or a SupervisedInputReceiver for TRAIN/EVAL)"
        )
    return receiver


def write_saved_model(
    export_dir: str,
    graphs: Sequence[ModeGraph],
    checkpoint_path: str,
    *,
    by_reference: bool = False,
    variables_from: str | None = None,
    as_text: bool = False,
    strip_default_attrs: bool = True,
    clear_devices: bool = False,
) -> VariablesOutcome:
    """Write ``graphs`` as MetaGraphs of one SavedModel at ``export_dir`` (which must not exist).

    The first graph carries the variables: restored from ``checkpoint_path`` and saved, or — with
    ``by_reference`` — the checkpoint files placed as ``variables/`` when :func:`reference_blockers`
    finds nothing against it (else a normal export, with the reason logged and returned).
    ``variables_from`` places another already-written variables prefix instead (per-mode exports share
    the first mode's saved variables that way).
    """
    import tensorflow as tf
    from tensorflow.python.saved_model import constants

    if not graphs:
        raise EstimatorSpecError("no modes to export: give at least one receiver")
    builder = tf.compat.v1.saved_model.Builder(export_dir)
    outcome = VariablesOutcome("saved")
    session_config = tf.compat.v1.ConfigProto(allow_soft_placement=True)
    for index, mode_graph in enumerate(graphs):
        with mode_graph.graph.as_default():
            if mode_graph.train_op is not None:
                tf.compat.v1.add_to_collection(constants.TRAIN_OP_KEY, mode_graph.train_op)
            kwargs = {
                "tags": mode_graph.tags,
                "signature_def_map": mode_graph.signature_def_map,
                "assets_collection": mode_graph.assets_collection,
                "main_op": mode_graph.local_init_op,
                "strip_default_attrs": strip_default_attrs,
                "clear_devices": clear_devices,
            }
            if index > 0:
                # Checked against the variables the first MetaGraph put in the SavedModel: no restore needed.
                _check_against_checkpoint(mode_graph, local_path(export_dir, VARIABLES_PREFIX))
                builder.add_meta_graph(saver=mode_graph.custom_saver or _default_saver(), **kwargs)
                continue
            reference = None
            if variables_from is not None or by_reference:
                source = variables_from or checkpoint_path
                blockers = reference_blockers(mode_graph.graph, source, mode_graph.custom_saver)
                if not blockers:
                    reference = source
                elif variables_from is None:
                    reason = "; ".join(blockers[:5])
                    log.warning(
                        "variables by reference not possible for %s (%s): %s; falling back to a normal export",
                        export_dir,
                        mode_label(mode_graph.mode),
                        reason,
                    )
                    outcome = VariablesOutcome("saved", fallback_reason=reason)
            with tf.compat.v1.Session(config=session_config) as session:
                if reference is not None:
                    saver = reference_saver(reference, sharded=True)
                else:
                    saver = mode_graph.custom_saver or _default_saver()
                    _restore(session, saver, mode_graph, checkpoint_path)
                builder.add_meta_graph_and_variables(session, saver=saver, **kwargs)
                if reference is not None:
                    outcome = VariablesOutcome(saver.placement.method)
    builder.save(as_text)
    return outcome


def _default_saver() -> Any:
    import tensorflow as tf

    return tf.compat.v1.train.Saver(sharded=True)


def _check_against_checkpoint(mode_graph: ModeGraph, checkpoint_path: str) -> None:
    if mode_graph.custom_saver is not None:
        return  # its own key mapping; the full verification after writing proves it
    problems = checkpoint_mismatches(graph_variable_specs(mode_graph.graph), checkpoint_path)
    if problems:
        raise CheckpointMismatchError(
            f"checkpoint {checkpoint_path} does not fit the {mode_label(mode_graph.mode)} graph: "
            + "; ".join(problems[:10])
            + (f" (and {len(problems) - 10} more)" if len(problems) > 10 else "")
            + ". Export a checkpoint written by this model_fn, or fix the variable names."
        )


def _restore(session: Any, saver: Any, mode_graph: ModeGraph, checkpoint_path: str) -> None:
    import tensorflow as tf

    _check_against_checkpoint(mode_graph, checkpoint_path)
    try:
        saver.restore(session, checkpoint_path)
    except (tf.errors.NotFoundError, tf.errors.InvalidArgumentError, ValueError) as exc:
        raise CheckpointMismatchError(
            f"could not restore the {mode_label(mode_graph.mode)} graph from {checkpoint_path}: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        ) from exc
