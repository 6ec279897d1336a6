"""The export library on the trained example model (real TF, real SavedModels, fixed batches).

All-modes export in both layouts, normal and by reference; Standalone and Distributed exporters through
the ExportContext (the 4-shard item bias); Final/Latest/Best exporters; and every bad input with its
specific error and an export folder left without partial versions.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

from components.export.compat.distributed import DistributedExporter
from components.export.compat.export_all_saved_models import export_all_saved_models
from components.export.compat.export_context import get_current_export_ctx, is_exporting_distributed
from components.export.compat.exporters import BestExporter, FinalExporter, LatestExporter
from components.export.compat.standalone import StandaloneExporter
from components.export.errors import (
    CheckpointMismatchError,
    EstimatorSpecError,
    ExportContractError,
    ExportError,
    MissingCheckpointError,
    ReceiverMismatchError,
    VerificationError,
)
from components.export.savedmodel.verify import (
    read_saved_model_proto,
    read_set_manifest,
    signatures_by_tag,
    verify_export,
)
from components.layout import SET_MANIFEST
from examples import data, model

STEP = 300
MODES = ("train", "eval", "infer")


def run_signature(export_dir, tags, signature, feed):
    """Outputs of one signature of a SavedModel on ``feed`` ({input key: value}), in a fresh session."""
    import tensorflow as tf

    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, list(tags), str(export_dir))
        sig = meta_graph.signature_def[signature]
        fetches = {k: v.name for k, v in sig.outputs.items() if "update_op" not in k}
        return session.run(fetches, {sig.inputs[k].name: v for k, v in feed.items()})


def batch(labelled: bool = False, n: int = 16, seed: int = 21) -> list[bytes]:
    arrays = data.generate_arrays(n, seed=seed)
    return [
        data.make_example(d, int(i), int(label) if labelled else None)
        for d, i, label in zip(arrays["dense"], arrays["item_id"], arrays["label"])
    ]


def same_outputs(a: dict, b: dict, keys=None) -> None:
    for key in keys or sorted(a):
        if np.asarray(a[key]).dtype.kind in "OSU":
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        else:
            np.testing.assert_allclose(a[key], b[key], rtol=1e-6, atol=1e-7, err_msg=key)


def entries(path) -> list[str]:
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


@pytest.fixture(scope="module")
def ckpt(trained_model):
    return str(trained_model.model_dir / f"model.ckpt-{STEP}")


@pytest.fixture(scope="module")
def estimator(trained_model):
    return model.make_estimator(trained_model.model_dir)


@pytest.fixture(scope="module")
def exports(estimator, ckpt, trained_model, tmp_path_factory):
    """Every export kind of step 300, normal and by reference, made once."""
    root = tmp_path_factory.mktemp("exports")
    receivers = model.all_modes_receiver_fn_map()
    out = {}
    for ref in (False, True):
        tag = "ref" if ref else "normal"
        out[f"combined-{tag}"] = export_all_saved_models(
            estimator, root / f"combined-{tag}", receivers, checkpoint_path=ckpt, by_reference=ref
        )
        out[f"per_mode-{tag}"] = export_all_saved_models(
            estimator,
            root / f"per_mode-{tag}",
            receivers,
            checkpoint_path=ckpt,
            layout="per_mode",
            by_reference=ref,
        )
        out[f"standalone-{tag}"] = StandaloneExporter(
            model.model_fn, trained_model.model_dir, root / f"standalone-{tag}", shared_embedding=ref
        ).export_saved_model(model.serving_input_receiver_fn, ckpt)
        out[f"distributed-{tag}"] = DistributedExporter(
            model.model_fn,
            trained_model.model_dir,
            root / f"distributed-{tag}",
            shared_embedding=ref,
            global_step_as_timestamp=True,
        ).export_saved_model(model.serving_input_receiver_fn, ckpt)
    out["root"] = root
    return out


@pytest.fixture(scope="module")
def reference_outputs(exports):
    """serve / train / eval outputs of the normal combined export on the fixed batches."""
    path = exports["combined-normal"]
    return {
        "serve": run_signature(path, ["serve"], "serving_default", {"examples": batch()}),
        "classification": run_signature(path, ["serve"], "classification", {"inputs": batch()}),
        "train": run_signature(path, ["train"], "train", {"examples": batch(labelled=True)}),
        "eval": run_signature(path, ["eval"], "eval", {"examples": batch(labelled=True)}),
    }


# ------------------------------------------------------------------------------------------------
# All modes, combined and per mode, normal and by reference


def test_combined_export_has_three_tags_and_variables_once(exports, ckpt):
    path = exports["combined-normal"]
    assert os.path.basename(path) == str(STEP)
    assert signatures_by_tag(path) == {
        "eval": ("eval",),
        "serve": ("classification", "serving_default"),
        "train": ("train",),
    }
    assert entries(Path(path) / "variables") == ["variables.data-00000-of-00001", "variables.index"]
    assert entries(Path(path).parent) == [str(STEP)]  # no temp folder left


def test_by_reference_links_the_checkpoint_and_gives_identical_outputs(exports, ckpt, reference_outputs):
    path = exports["combined-ref"]
    assert signatures_by_tag(path) == signatures_by_tag(exports["combined-normal"])
    for suffix in (".index", ".data-00000-of-00001"):
        assert os.stat(f"{path}/variables/variables{suffix}").st_ino == os.stat(f"{ckpt}{suffix}").st_ino
    same_outputs(
        run_signature(path, ["serve"], "serving_default", {"examples": batch()}), reference_outputs["serve"]
    )
    same_outputs(
        run_signature(path, ["serve"], "classification", {"inputs": batch()}),
        reference_outputs["classification"],
    )
    train = run_signature(path, ["train"], "train", {"examples": batch(labelled=True)})
    evaluation = run_signature(path, ["eval"], "eval", {"examples": batch(labelled=True)})
    same_outputs(train, reference_outputs["train"], ["loss", "predictions/probability"])
    same_outputs(evaluation, reference_outputs["eval"], ["loss", "predictions/logit"])
    assert np.isfinite(reference_outputs["eval"]["loss"])


@pytest.mark.parametrize("tag", ["normal", "ref"])
def test_per_mode_layout_is_one_single_metagraph_saved_model_per_mode(exports, tag, reference_outputs):
    import tensorflow as tf

    paths = exports[f"per_mode-{tag}"]
    base = exports["root"] / f"per_mode-{tag}"
    assert paths == {m: str(base / m / str(STEP)) for m in ("train", "eval", "predict")}
    assert {m: list(signatures_by_tag(p)) for m, p in paths.items()} == {
        "train": ["train"],
        "eval": ["eval"],
        "predict": ["serve"],
    }
    manifest = read_set_manifest_from(base / "export_sets" / f"{STEP}.json")
    assert manifest["layout"] == "per_mode" and set(manifest["graphs"]) == {"train", "eval", "predict"}
    # A loader that cannot pass tags loads the predict graph alone.
    loaded = tf.saved_model.load(paths["predict"])
    out = loaded.signatures["serving_default"](examples=tf.constant(batch()))
    np.testing.assert_allclose(
        out["probability"].numpy(), reference_outputs["serve"]["probability"], rtol=1e-6
    )
    same_outputs(
        run_signature(paths["eval"], ["eval"], "eval", {"examples": batch(labelled=True)}),
        reference_outputs["eval"],
        ["loss"],
    )


def read_set_manifest_from(path: Path) -> dict:
    import json

    return json.loads(path.read_text())


def test_per_mode_saves_variables_once_and_links_them_into_other_modes(exports, ckpt):
    paths = exports["per_mode-normal"]
    train_index = os.stat(f"{paths['train']}/variables/variables.index")
    for mode in ("eval", "predict"):
        assert os.stat(f"{paths[mode]}/variables/variables.index").st_ino == train_index.st_ino
    assert train_index.st_ino != os.stat(f"{ckpt}.index").st_ino  # saved, not the checkpoint
    by_ref = exports["per_mode-ref"]
    assert all(
        os.stat(f"{p}/variables/variables.index").st_ino == os.stat(f"{ckpt}.index").st_ino
        for p in by_ref.values()
    )


def test_graph_level_verification_matches_and_catches_wrong_variables(exports, tmp_path, wrong_checkpoint):
    path = exports["combined-ref"]
    assert verify_export(path, "graph") == verify_export(path, "full")
    broken = tmp_path / "broken"
    shutil.copytree(path, broken, copy_function=shutil.copy)
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copy(f"{wrong_checkpoint}{suffix}", broken / "variables" / f"variables{suffix}")
    with pytest.raises(VerificationError, match="item_embedding.*shape"):
        verify_export(str(broken), "graph")
    with pytest.raises(VerificationError, match="item_embedding.*shape"):
        verify_export(str(broken), "full")  # a restore alone would take the wrong shape silently


def test_rerun_is_idempotent_and_force_rewrites(estimator, ckpt, tmp_path):
    receivers = {"infer": model.serving_input_receiver_fn}
    first = export_all_saved_models(estimator, tmp_path, receivers, checkpoint_path=ckpt)
    stamp = os.stat(f"{first}/saved_model.pb").st_mtime_ns
    assert export_all_saved_models(estimator, tmp_path, receivers, checkpoint_path=ckpt) == first
    assert os.stat(f"{first}/saved_model.pb").st_mtime_ns == stamp
    forced = export_all_saved_models(estimator, tmp_path, receivers, checkpoint_path=ckpt, force=True)
    assert forced == first and os.stat(f"{first}/saved_model.pb").st_mtime_ns != stamp
    assert entries(tmp_path) == [str(STEP)]
    stamped = export_all_saved_models(
        estimator, tmp_path, receivers, checkpoint_path=ckpt, version_scheme="timestamp"
    )
    assert int(os.path.basename(stamped)) > 1_600_000_000


def test_assets_extra_as_text_and_strip_default_attrs(estimator, ckpt, tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("ids")
    receivers = {"infer": model.serving_input_receiver_fn}
    text = export_all_saved_models(
        estimator, tmp_path / "text", receivers, {"vocab/ids.txt": str(vocab)}, True, ckpt
    )
    assert (Path(text) / "assets.extra" / "vocab" / "ids.txt").read_text() == "ids"
    assert entries(text) == ["assets.extra", "saved_model.pbtxt", "variables"]
    assert signatures_by_tag(text) == {"serve": ("classification", "serving_default")}

    def attrs(path):
        return sum(len(n.attr) for mg in read_saved_model_proto(path).meta_graphs for n in mg.graph_def.node)

    stripped = export_all_saved_models(estimator, tmp_path / "stripped", receivers, checkpoint_path=ckpt)
    full = export_all_saved_models(
        estimator, tmp_path / "full", receivers, checkpoint_path=ckpt, strip_default_attrs=False
    )
    assert attrs(stripped) < attrs(full)


# ------------------------------------------------------------------------------------------------
# Standalone and Distributed exporters through the ExportContext


def test_standalone_export_serves_like_the_all_modes_export(exports, reference_outputs, ckpt):
    for tag in ("normal", "ref"):
        path = exports[f"standalone-{tag}"]
        assert os.path.basename(path) == str(STEP)
        assert signatures_by_tag(path) == {"serve": ("classification", "serving_default")}
        same_outputs(
            run_signature(path, ["serve"], "serving_default", {"examples": batch()}),
            reference_outputs["serve"],
        )
    linked = os.stat(f"{exports['standalone-ref']}/variables/variables.index").st_ino
    assert linked == os.stat(f"{ckpt}.index").st_ino


def _serve_distributed(paths: dict[str, str], examples: list[bytes]) -> dict:
    """What a serving router does: route on entry, look up on each shard, then entry's serving signature."""
    routes = run_signature(paths["entry"], ["serve"], "route", {"examples": examples})
    feed = {"examples": examples}
    for key, ids in routes.items():
        table, graph = key.split("/")
        feed[key] = run_signature(paths[graph], ["serve"], f"lookup_{table}", {"ids": ids})["embeddings"]
    return run_signature(paths["entry"], ["serve"], "serving_default", feed)


@pytest.mark.parametrize("tag", ["normal", "ref"])
def test_distributed_export_answers_like_the_standalone_one(exports, reference_outputs, tag):
    paths = exports[f"distributed-{tag}"]
    base = exports["root"] / f"distributed-{tag}"
    assert paths == {g: str(base / g / str(STEP)) for g in ("entry", "ps_0", "ps_1", "ps_2", "ps_3")}
    assert signatures_by_tag(paths["entry"]) == {"serve": ("classification", "route", "serving_default")}
    assert all(signatures_by_tag(paths[f"ps_{i}"]) == {"serve": ("lookup_item_bias",)} for i in range(4))
    manifest = read_set_manifest_from(base / "export_sets" / f"{STEP}.json")
    assert manifest["layout"] == "distributed" and set(manifest["graphs"]) == set(paths)
    assert sorted(r["graph"] for r in manifest["remote_lookups"]) == ["ps_0", "ps_1", "ps_2", "ps_3"]
    same_outputs(_serve_distributed(paths, batch()), reference_outputs["serve"])


def test_distributed_graphs_hold_only_their_own_variables(exports):
    import tensorflow as tf

    paths = exports["distributed-normal"]
    shard = dict(tf.train.list_variables(f"{paths['ps_1']}/variables/variables"))
    assert set(shard) == {"global_step", "item_bias/part_1"}
    entry = dict(tf.train.list_variables(f"{paths['entry']}/variables/variables"))
    assert "hidden/kernel" in entry and not any(name.startswith("item_bias") for name in entry)


def model_fn_with_dense_graph_and_gpu(features, labels, mode, params=None):
    """The example model plus a dense sub-graph and an op placed on a GPU, for the exporter options."""
    import tensorflow as tf

    spec = model.model_fn(features, labels, mode, params)
    ctx = get_current_export_ctx()
    if is_exporting_distributed():
        graph = ctx.dense_sub_graph("dense_tower")
        with graph.as_default():
            dense = tf.compat.v1.placeholder(tf.float32, [None, data.DENSE_DIM], name="dense")
            with tf.compat.v1.variable_scope("hidden"):
                kernel = tf.compat.v1.get_variable("kernel", shape=[data.DENSE_DIM, 32])
                bias = tf.compat.v1.get_variable("bias", shape=[32])
            ctx.add_signature(
                graph, "hidden", {"dense": dense}, {"hidden": tf.nn.relu(tf.matmul(dense, kernel) + bias)}
            )
    with tf.device("/device:GPU:0"):
        doubled = tf.identity(spec.predictions["probability"] * 2.0, name="on_gpu")
    return spec._replace(predictions={**spec.predictions, "doubled": doubled})


def _devices(path: str) -> set[str]:
    return {n.device for mg in read_saved_model_proto(path).meta_graphs for n in mg.graph_def.node}


def test_distributed_options(trained_model, ckpt, tmp_path):
    def export(name, **options):
        exporter = DistributedExporter(
            model_fn_with_dense_graph_and_gpu,
            trained_model.model_dir,
            tmp_path / name,
            global_step_as_timestamp=True,
            **options,
        )
        return exporter.export_saved_model(model.serving_input_receiver_fn, ckpt)

    full = export("full")
    assert set(full) == {"entry", "dense_tower", "ps_0", "ps_1", "ps_2", "ps_3"}
    assert "/device:CPU:0" in _devices(full["entry"]) and not any("GPU" in d for d in _devices(full["entry"]))
    hidden = run_signature(
        full["dense_tower"], ["serve"], "hidden", {"dense": np.ones([2, data.DENSE_DIM], np.float32)}
    )
    assert hidden["hidden"].shape == (2, 32)

    dense_only = export("dense_only", dense_only=True)
    assert set(dense_only) == {"entry", "dense_tower"}
    included = export("included", include_graphs=["ps_2"], allow_gpu=True, clear_entry_devices=True)
    assert set(included) == {"ps_2"}
    entry_only = export("entry_only", include_graphs=["entry"], allow_gpu=True)
    assert any("GPU" in d for d in _devices(entry_only["entry"]))  # kept where allowed
    cleared = export("cleared", include_graphs=["entry"], allow_gpu=True, clear_entry_devices=True)
    assert _devices(cleared["entry"]) == {""}
    with pytest.raises(ExportContractError, match=r"include_graphs names \['ps_9'\]"):
        export("unknown", include_graphs=["ps_9"])
    assert entries(tmp_path / "unknown") == []
    timestamped = DistributedExporter(model.model_fn, trained_model.model_dir, tmp_path / "ts")
    versions = {
        os.path.basename(p)
        for p in timestamped.export_saved_model(model.serving_input_receiver_fn, ckpt).values()
    }
    assert len(versions) == 1 and int(versions.pop()) > 1_600_000_000  # Monolith's default: one timestamp


# ------------------------------------------------------------------------------------------------
# Final, Latest and Best exporters


def test_final_latest_and_best_exporters(estimator, trained_model, tmp_path):
    ckpts = {s: str(trained_model.model_dir / f"model.ckpt-{s}") for s in (100, 200, 300)}
    receiver = model.serving_input_receiver_fn

    final = FinalExporter("final", receiver, by_reference=True)
    assert final.export(estimator, tmp_path / "final", ckpts[200], {"loss": 1.0}, False) is None
    assert entries(tmp_path / "final") == []
    path = final.export(estimator, tmp_path / "final", None, None, True)  # latest checkpoint
    assert path == str(tmp_path / "final" / "300") and signatures_by_tag(path) == {
        "serve": ("classification", "serving_default")
    }

    latest_dir = tmp_path / "latest"
    crashed = latest_dir / f".tmp-50-999999999@{socket.gethostname()}"  # this host, no such process
    crashed.mkdir(parents=True)
    latest = LatestExporter("latest", receiver, exports_to_keep=2)
    for step in (100, 200, 300):
        assert latest.export(estimator, latest_dir, ckpts[step], None, False) == str(latest_dir / str(step))
    assert entries(latest_dir) == ["200", "300"]  # newest two, crashed temp dir gone

    best_dir = tmp_path / "best"
    ledger = {}
    best = BestExporter("best", receiver, best_so_far=lambda: ledger.get("best"))
    assert best.export(estimator, best_dir, ckpts[100], {"loss": 0.6}, False) == str(best_dir / "100")
    ledger["best"] = {"loss": 0.6}
    assert best.export(estimator, best_dir, ckpts[200], {"loss": 0.7}, False) is None
    assert best.export(estimator, best_dir, ckpts[300], {"loss": 0.5}, False) == str(best_dir / "300")
    # A "restart": a new exporter with the ledger's best never exports a worse model.
    restarted = BestExporter("best", receiver, best_so_far=lambda: {"loss": 0.5})
    assert restarted.export(estimator, best_dir, ckpts[200], {"loss": 0.55}, False) is None
    assert entries(best_dir) == ["100", "300"]


# ------------------------------------------------------------------------------------------------
# Bad input: the specific error, and nothing partial left behind


def _wrap(**changes):
    """A model_fn returning the example's EstimatorSpec with ``changes`` (bypassing its checks)."""

    def model_fn(features, labels, mode, params=None):
        spec = model.model_fn(features, labels, mode, params)
        values = spec._asdict()
        values.update({k: v(spec) if callable(v) else v for k, v in changes.get(mode, {}).items()})
        return type(spec)._make(values.values())  # _make skips EstimatorSpec's own validation

    return model_fn


def _estimator(model_fn, model_dir):
    import tensorflow as tf

    return tf.estimator.Estimator(model_fn=model_fn, model_dir=str(model_dir))


def _assert_nothing_left(base: Path) -> None:
    leftovers = [str(p) for p in base.rglob("*")] if base.exists() else []
    assert leftovers == [], leftovers


@pytest.mark.parametrize(
    ("changes", "modes", "error", "match"),
    [
        (
            {"infer": {"predictions": None, "export_outputs": None}},
            ("infer",),
            EstimatorSpecError,
            r"PREDICT \('infer'\) has neither predictions nor export_outputs",
        ),
        ({"train": {"train_op": None}}, ("train",), EstimatorSpecError, r"TRAIN \('train'\) has no train_op"),
        ({"train": {"loss": None}}, ("train",), EstimatorSpecError, r"TRAIN \('train'\) has no loss"),
        ({"eval": {"loss": None}}, ("eval", "infer"), EstimatorSpecError, r"EVAL \('eval'\) has no loss"),
        (
            {
                "infer": {
                    "export_outputs": lambda s: {
                        "a": s.export_outputs["serving_default"],
                        "b": s.export_outputs["classification"],
                    }
                }
            },
            ("infer",),
            EstimatorSpecError,
            r"multi-head export_outputs \['a', 'b'\] lack the default serving key",
        ),
        (
            {"infer": {"export_outputs": {"serving_default": "not an output"}}},
            ("infer",),
            EstimatorSpecError,
            r"export_outputs\['serving_default'\] is str",
        ),
        ({"infer": {"mode": "eval"}}, ("infer",), EstimatorSpecError, "says mode='eval'"),
    ],
)
def test_estimator_spec_errors_name_the_mode_and_the_missing_piece(
    trained_model, ckpt, tmp_path, changes, modes, error, match
):
    receivers = {m: model.all_modes_receiver_fn_map()[m] for m in modes}
    with pytest.raises(error, match=match) as caught:
        export_all_saved_models(
            _estimator(_wrap(**changes), trained_model.model_dir),
            tmp_path / "out",
            receivers,
            checkpoint_path=ckpt,
        )
    assert isinstance(caught.value, ValueError)
    _assert_nothing_left(tmp_path / "out")


def test_estimator_spec_validation_inside_model_fn_is_a_spec_error(trained_model, ckpt, tmp_path):
    def model_fn(features, labels, mode):
        import tensorflow as tf

        return tf.estimator.EstimatorSpec(mode=mode)

    with pytest.raises(
        EstimatorSpecError, match=r"invalid EstimatorSpec for mode PREDICT \('infer'\): Missing predictions"
    ):
        export_all_saved_models(
            _estimator(model_fn, trained_model.model_dir),
            tmp_path / "out",
            {"infer": model.serving_input_receiver_fn},
            checkpoint_path=ckpt,
        )
    _assert_nothing_left(tmp_path / "out")


def test_model_fn_returning_something_else(trained_model, ckpt, tmp_path):
    est = _estimator(lambda features, labels, mode: {"probability": features}, trained_model.model_dir)
    with pytest.raises(
        EstimatorSpecError, match=r"did not return a tf.estimator.EstimatorSpec in mode PREDICT \('infer'\)"
    ):
        export_all_saved_models(
            est, tmp_path / "out", {"infer": model.serving_input_receiver_fn}, checkpoint_path=ckpt
        )
    _assert_nothing_left(tmp_path / "out")


def test_receiver_map_errors(estimator, ckpt, tmp_path):
    base = tmp_path / "out"
    with pytest.raises(ReceiverMismatchError, match=r"receiver for mode TRAIN \('train'\) is None") as caught:
        export_all_saved_models(estimator, base, {"train": None, "infer": model.serving_input_receiver_fn})
    assert isinstance(caught.value, ValueError)
    with pytest.raises(EstimatorSpecError, match="no modes to export"):
        export_all_saved_models(estimator, base, {})
    with pytest.raises(EstimatorSpecError, match=r"unknown modes \['serve'\]"):
        export_all_saved_models(estimator, base, {"serve": model.serving_input_receiver_fn})
    _assert_nothing_left(base)


def test_no_checkpoint_is_a_value_error(tmp_path):
    empty = _estimator(model.model_fn, tmp_path / "empty_model_dir")
    with pytest.raises(MissingCheckpointError, match="no checkpoint") as caught:
        export_all_saved_models(empty, tmp_path / "out", {"infer": model.serving_input_receiver_fn})
    assert isinstance(caught.value, ValueError)
    with pytest.raises(MissingCheckpointError):
        StandaloneExporter(model.model_fn, tmp_path / "empty_model_dir", tmp_path / "out").export_saved_model(
            model.serving_input_receiver_fn
        )
    _assert_nothing_left(tmp_path / "out")


def foo_receiver():
    import tensorflow as tf

    foo = tf.compat.v1.placeholder(tf.string, [None], name="foo")
    return tf.estimator.export.ServingInputReceiver({"foo": foo}, {"foo": foo})


def dict_receiver():
    return {"examples": None}


def test_receiver_whose_inputs_do_not_match_the_model(estimator, ckpt, tmp_path):
    base = tmp_path / "out"
    with pytest.raises(
        ReceiverMismatchError,
        match=r"PREDICT \('infer'\) on the features of receiver foo_receiver \{'foo': string\[\?\]\}: KeyError",
    ):
        export_all_saved_models(estimator, base, {"infer": foo_receiver}, checkpoint_path=ckpt)
    with pytest.raises(
        ReceiverMismatchError,
        match="returned dict; it must return a tf.estimator.export.ServingInputReceiver",
    ):
        export_all_saved_models(estimator, base, {"infer": dict_receiver}, checkpoint_path=ckpt)
    with pytest.raises(ReceiverMismatchError, match=r"TRAIN \('train'\) returned no labels"):
        export_all_saved_models(
            estimator, base, {"train": model.serving_input_receiver_fn}, checkpoint_path=ckpt
        )
    with pytest.raises(ReceiverMismatchError, match="foo_receiver"):
        StandaloneExporter(model.model_fn, tmp_path / "unused", base).export_saved_model(foo_receiver, ckpt)
    _assert_nothing_left(base)


@pytest.fixture(scope="module")
def wrong_checkpoint(ckpt, tmp_path_factory):
    """The step-300 checkpoint with item_embedding of width 8 instead of 16 (a different model's)."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(ckpt)
    prefix = str(tmp_path_factory.mktemp("wrong") / "model.ckpt-300")
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        for name in reader.get_variable_to_shape_map():
            value = reader.get_tensor(name)
            if name == model.EMBEDDING_VARIABLE:
                value = value[:, :8]
            tf.compat.v1.Variable(value, name=name)
        session.run(tf.compat.v1.global_variables_initializer())
        tf.compat.v1.train.Saver().save(session, prefix, write_meta_graph=False, write_state=False)
    return prefix


@pytest.mark.parametrize("by_reference", [False, True])
def test_checkpoint_of_another_model_names_the_mismatch(
    estimator, wrong_checkpoint, tmp_path, caplog, by_reference
):
    base = tmp_path / "out"
    mismatch = r"'item_embedding' has shape \[1000, 16\] in the graph but \[1000, 8\]"
    with (
        caplog.at_level(logging.WARNING, logger="components.export"),
        pytest.raises(CheckpointMismatchError, match=mismatch),
    ):
        export_all_saved_models(
            estimator,
            base,
            model.all_modes_receiver_fn_map(),
            checkpoint_path=wrong_checkpoint,
            by_reference=by_reference,
        )
    if by_reference:
        assert "falling back to a normal export" in caplog.text
    _assert_nothing_left(base)


def model_fn_with_custom_saver(features, labels, mode, params=None):
    import tensorflow as tf

    spec = model.model_fn(features, labels, mode, params)
    return spec._replace(scaffold=tf.compat.v1.train.Scaffold(saver=tf.compat.v1.train.Saver(sharded=True)))


def test_by_reference_falls_back_when_it_cannot_be_proven_and_says_why(
    trained_model, ckpt, tmp_path, caplog, reference_outputs
):
    est = _estimator(model_fn_with_custom_saver, trained_model.model_dir)
    with caplog.at_level(logging.WARNING, logger="components.export"):
        path = export_all_saved_models(
            est, tmp_path, {"infer": model.serving_input_receiver_fn}, checkpoint_path=ckpt, by_reference=True
        )
    assert "scaffold sets its own saver" in caplog.text and "falling back to a normal export" in caplog.text
    assert os.stat(f"{path}/variables/variables.index").st_ino != os.stat(f"{ckpt}.index").st_ino
    same_outputs(
        run_signature(path, ["serve"], "serving_default", {"examples": batch()}), reference_outputs["serve"]
    )


def test_unwritable_destination(estimator, ckpt, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ExportError, match="cannot create the export folder"):
        export_all_saved_models(
            estimator, blocker / "exports", {"infer": model.serving_input_receiver_fn}, checkpoint_path=ckpt
        )
    with pytest.raises(ExportError, match="cannot create the export folder"):
        LatestExporter("latest", model.serving_input_receiver_fn).export(
            estimator, blocker / "x", ckpt, None, False
        )
    with pytest.raises(ExportError, match="cannot create the export folder"):
        DistributedExporter(
            model.model_fn, tmp_path, blocker / "d", global_step_as_timestamp=True
        ).export_saved_model(model.serving_input_receiver_fn, ckpt)
    assert blocker.read_text() == "not a folder"
    assert entries(tmp_path) == ["a-file"]


def test_set_manifest_reader_rejects_foreign_files(tmp_path):
    (tmp_path / SET_MANIFEST).write_text('{"format": "something else"}')
    with pytest.raises(VerificationError, match="not an exportflow.export_set"):
        read_set_manifest(str(tmp_path))
    assert read_set_manifest(str(tmp_path / "missing")) is None
