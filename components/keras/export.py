"""Export a Keras checkpoint with ``keras.export.ExportArchive``, deciding as the configured strategy does.

The export executor keeps everything around the writer (version, temp folder, staging, retention); for a
Keras model the pipeline turns each configured strategy into a ``KerasExportStrategy``: the strategy's own
``decide`` (latest, best, final, a custom one), then the model at that checkpoint written as a SavedModel
with the configured endpoints (default ``serve``: the model's call on its own inputs; the first endpoint is
also ``serving_default``, the signature TF Serving answers by default). Before the folder is handed on,
the SavedModel is loaded back and every endpoint called on a sample batch; the default endpoint must
answer as the model itself does.

A ``custom`` strategy's ``ExportStrategy(name, export_fn)`` gets the Keras model where an Estimator's
would get the Estimator: ``export_fn(model, export_path, checkpoint_path, eval_result)``.
"""

from __future__ import annotations

import logging
from typing import Any

from components.config.schema import KerasEndpointConfig, PipelineConfig
from components.export.errors import StrategyConfigError
from components.export.savedmodel.versions import Written
from components.export.strategies.base import Decision, PipelineStrategy, StrategyContext
from components.export.strategies.exporter_kinds import BestStrategy, ledger_best
from components.keras.errors import KerasEndpointError
from components.keras.model import keras_section, load_checkpoint_model

log = logging.getLogger(__name__)
DEFAULT_ENDPOINT = KerasEndpointConfig(name="serve")
SAMPLE_BATCH = 3


class KerasExportStrategy(PipelineStrategy):
    """The configured strategy's decision with Keras's writer (see the module docstring)."""

    def __init__(self, inner: PipelineStrategy) -> None:
        super().__init__(inner.name, inner.params)
        self.inner = inner
        self.exports_to_keep = inner.exports_to_keep
        self.verify = inner.verify
        self.version_scheme = inner.version_scheme

    def decide(self, ctx: StrategyContext) -> Decision:
        if isinstance(self.inner, BestStrategy):  # its Estimator exporter needs a receiver: compare here
            return best_decision(self.inner, ctx)
        return self.inner.decide(ctx)

    def write(self, ctx: StrategyContext, export_dir: str) -> Written:
        model = load_checkpoint_model(ctx.config, ctx.checkpoint_path, ctx.evaluation.checkpoint.label)
        if hasattr(self.inner, "target"):  # kind custom: the user's export_fn gets the model
            written = self.inner.write(ctx, export_dir, model=model)
            if written.declined is None:
                check_endpoints(export_dir, {})
            return written
        endpoints = write_archive(ctx.config, model, export_dir)
        check_endpoints(export_dir, endpoints)
        return Written()


def best_decision(strategy: BestStrategy, ctx: StrategyContext) -> Decision:
    """Kind best's rule (its compare_fn against the best this strategy exported, from the ledger)."""
    metrics = dict(ctx.evaluation.metrics)
    if not metrics:
        raise StrategyConfigError(
            f"strategy {strategy.name!r} compares evaluations, but step {ctx.step} has no metrics; "
            "configure evaluation.input_fn"
        )
    compare = strategy.compare_fn(ctx)
    rule = getattr(compare, "__name__", "compare_fn")
    best = ledger_best(ctx.ledger, strategy.name, compare, exclude_step=ctx.step)
    if best is None:
        return Decision(True, "no earlier export to compare with")
    try:
        better = compare(best_eval_result=best, current_eval_result=metrics)
    except ValueError as exc:
        raise StrategyConfigError(f"strategy {strategy.name!r}: compare_fn failed on step {ctx.step}: {exc}") from exc
    if better:
        return Decision(True, f"better than the best so far by {rule}")
    return Decision(False, f"not better than the best so far by {rule}")


def keras_strategy(inner: PipelineStrategy) -> PipelineStrategy:
    """``ExportParams.adapt_strategy`` for a Keras model."""
    return KerasExportStrategy(inner)


def write_archive(config: PipelineConfig, model: Any, export_dir: str) -> dict[str, Any]:
    """Write the SavedModel; returns each endpoint's in-memory function and input signature (to compare
    the loaded endpoint with)."""
    import keras
    import tensorflow as tf

    endpoints = keras_section(config).endpoints or (DEFAULT_ENDPOINT,)
    archive = keras.export.ExportArchive()
    archive.track(model)
    functions = {}
    for endpoint in endpoints:
        function = _endpoint_function(model, endpoint)
        signature = input_signature(model, endpoint)
        try:  # traced here (the archive traces only when writing) so a mismatch names its endpoint
            tf.function(function, input_signature=signature, autograph=False).get_concrete_function()
            archive.add_endpoint(name=endpoint.name, fn=function, input_signature=signature)
        except Exception as exc:  # the model on a signature it does not take
            raise KerasEndpointError(
                f"endpoint {endpoint.name!r}: {endpoint.method} does not take the input signature "
                f"{_describe(signature)} (the model's inputs are {_describe(model_inputs(model))}): "
                f"{type(exc).__name__}: {_first_line(exc)}; fix keras.endpoints[].input_signature, or remove it "
                "to use the model's own inputs"
            ) from exc
        functions[endpoint.name] = (function, signature)
    archive.write_out(export_dir, verbose=False)
    return functions


def _endpoint_function(model: Any, endpoint: KerasEndpointConfig) -> Any:
    if endpoint.method == "call":
        return lambda *inputs: model(*inputs, training=False)
    function = getattr(model, endpoint.method, None)
    if not callable(function):
        raise KerasEndpointError(
            f"endpoint {endpoint.name!r}: the model ({type(model).__name__}) has no method {endpoint.method!r}; "
            "name a method of the model class, or call"
        )
    return function


def model_inputs(model: Any) -> Any:
    """The model's inputs as TensorSpecs, in their structure (a dict for named inputs)."""
    import tensorflow as tf
    from keras import tree

    return tree.map_structure(lambda t: tf.TensorSpec(t.shape, t.dtype, name=t.name), model.input)


def input_signature(model: Any, endpoint: KerasEndpointConfig) -> list[Any]:
    """The endpoint's input signature: the config's (named inputs, as the model's structure) or the model's."""
    import tensorflow as tf

    own = model_inputs(model)
    if not endpoint.input_signature:
        return [own]
    specs = {
        name: tf.TensorSpec(tuple(spec.shape), tf.dtypes.as_dtype(spec.dtype), name=name)
        for name, spec in endpoint.input_signature.items()
    }
    if isinstance(own, dict):
        if set(specs) != set(own) and endpoint.method == "call":
            raise KerasEndpointError(
                f"endpoint {endpoint.name!r}: input_signature names {sorted(specs)}, the model's inputs are "
                f"{sorted(own)}; name each of the model's inputs once"
            )
        return [specs]
    if isinstance(own, (list, tuple)):  # positional inputs, in the config's order
        return [list(specs.values())]
    if len(specs) != 1:
        raise KerasEndpointError(
            f"endpoint {endpoint.name!r}: the model takes one input, input_signature names {sorted(specs)}"
        )
    return list(specs.values())


def sample_batch(signature: Any) -> Any:
    """A small deterministic batch fitting a (structured) input signature: floats, zeros for ids."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)

    def make(spec: Any) -> Any:
        shape = [SAMPLE_BATCH if i == 0 and d is None else (d if d is not None else 1) for i, d in enumerate(spec.shape)]
        if spec.dtype.is_floating:
            return tf.constant(rng.normal(size=shape), dtype=spec.dtype)
        if spec.dtype == tf.string:
            return tf.constant(np.full(shape, b""), dtype=tf.string)
        return tf.zeros(shape, dtype=spec.dtype)

    return tf.nest.map_structure(make, signature)


def check_endpoints(export_dir: str, functions: dict[str, tuple[Any, list[Any]]]) -> None:
    """Load the SavedModel and call every signature on a sample batch; an endpoint written from the model
    must answer as the model does on the same batch (to float tolerance)."""
    import numpy as np
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(export_dir)
    except Exception as exc:
        raise KerasEndpointError(f"the export at {export_dir} does not load: {type(exc).__name__}: {_first_line(exc)}") from exc
    if not loaded.signatures:
        raise KerasEndpointError(f"the export at {export_dir} has no signatures; TF Serving could not call it")
    for name, signature in loaded.signatures.items():
        _, kwargs = signature.structured_input_signature
        try:
            signature(**sample_batch(kwargs))
        except Exception as exc:
            raise KerasEndpointError(
                f"signature {name!r} of the export fails on a sample batch {_describe(kwargs)}: "
                f"{type(exc).__name__}: {_first_line(exc)}"
            ) from exc
    for name, (function, input_signature) in functions.items():
        sample = sample_batch(input_signature)
        expected = tf.nest.flatten(function(*sample))
        got = tf.nest.flatten(getattr(loaded, name)(*sample))
        if len(expected) != len(got) or not all(
            np.allclose(np.asarray(e), np.asarray(g), rtol=1e-5, atol=1e-6) for e, g in zip(expected, got, strict=True)
        ):
            raise KerasEndpointError(f"endpoint {name!r} of the export answers differently from the model")
    log.info("export %s: signatures %s answer on a sample batch", export_dir, sorted(loaded.signatures))


def _describe(signature: Any) -> str:
    import tensorflow as tf

    def one(spec: Any) -> str:
        return f"{spec.dtype.name}{list(spec.shape)}"

    if isinstance(signature, dict):
        return "{" + ", ".join(f"{k}: {one(v)}" for k, v in signature.items()) + "}"
    return str([one(s) for s in tf.nest.flatten(signature)])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:500] if text else ""
