"""exportflow's publisher as a TFX component, run by TFX's own LocalDagRunner with an SQLite MLMD store.

The TFX DSL needs protobuf >= 6 and TF 2.15 protobuf < 5, so the pipeline runs in the TFX interop
environment (``interop/tfx``, built here from its lock) as a child process, fed a real SavedModel that
this (TensorFlow) environment exports from the trained example model. What the child published is then
read here with exportflow's own readers: the files against the manifest's CRC32C, the commit marker,
retention's survey and the ledger, plus the PushedModel's properties and lineage from MLMD.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from components.artifacts import to_jsonable
from components.config import load_config
from components.layout import WARMUP_PATH
from components.ledger import Ledger
from components.manifest import MANIFEST_PATH, read_manifest
from components.publish.layout import layout_for
from components.publish.marker import read_marker
from components.publish.retention import survey
from components.storage import Storage, crc32c_of_bytes, storage_for
from plugins.ui.history import build_history
from tests.support.example_pipeline import write_config
from tests.support.publishing import assert_nothing_partial_is_loadable, loadable_versions, relative_objects
from tests.support.tfx_env import build_tfx_env, child_env, kill_at, lineage, run_pipeline

STEP = 300
METRICS = {"auc": 0.81, "loss": 0.52}


@pytest.fixture(scope="session")
def tfx_python() -> Path:
    """The TFX environment's interpreter, synced with interop/tfx/uv.lock (built when missing)."""
    return build_tfx_env()


@pytest.fixture(scope="module")
def savedmodel(trained_model: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A serving SavedModel of step 300, exported by TF 2.15 in this environment as a TFX Trainer would."""
    from examples import model

    estimator = model.make_estimator(trained_model.model_dir)
    path = estimator.export_saved_model(
        str(tmp_path_factory.mktemp("savedmodel")),
        model.serving_input_receiver_fn,
        checkpoint_path=str(trained_model.model_dir / f"model.ckpt-{STEP}"),
    )
    return Path(path.decode() if isinstance(path, bytes) else path)


def write_warmup(savedmodel: Path, records: int) -> Path:
    """``records`` Predict requests for the example model as the SavedModel's TF Serving warmup file."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    path = savedmodel / WARMUP_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    request = predict_pb2.PredictRequest()
    request.model_spec.signature_name = "serving_default"
    request.inputs["examples"].CopyFrom(tf.make_tensor_proto([b""], dtype=tf.string))
    log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
    with tf.io.TFRecordWriter(str(path)) as writer:
        for _ in range(records):
            writer.write(log.SerializeToString())
    return path


def config_file(folder: Path, destination: str) -> str:
    """An exportflow config publishing the example model's versions under strategy ``tfx``."""
    data = {
        "name": "example",
        "model_dir": str(folder / "model"),
        "model_fn": "examples.model:model_fn",
        "receivers": {"predict": "examples.model:serving_input_receiver_fn"},
        "destination": {"uri": destination, "keep": 3},
        "strategies": [{"name": "tfx", "kind": "tfx_pusher"}],
    }
    return str(write_config(data, folder / "configs" / "example.yaml"))


def spec(root: Path, savedmodel: Path, config: str, **fields: Any) -> dict[str, Any]:
    return {
        "root": str(root), "saved_model": str(savedmodel), "step": STEP,
        "checkpoint": f"/training/model.ckpt-{STEP}", "config": config, "metrics": METRICS, **fields,
    }


def pushed_models(store: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for a in store["artifacts"] if a["type"] == "PushedModel"]


def assert_published_as_exportflow_publishes(
    storage: Storage, destination: str, savedmodel: Path, config: str
) -> dict[str, Any]:
    """The version under exportflow's layout, byte-exact against its manifest, committed by its marker,
    complete for retention, recorded in the ledger and shown by the UI; returns the manifest."""
    layout = layout_for(storage, destination, "example", str(STEP), [None])
    objects = relative_objects(storage, layout.primary_dir)
    manifest = read_manifest(storage.read_bytes(storage.join(layout.primary_dir, MANIFEST_PATH)))
    assert {e.path for e in manifest.files} | {MANIFEST_PATH} == set(objects)
    for entry in manifest.files:
        data = storage.read_bytes(objects[entry.path].uri)
        assert (len(data), crc32c_of_bytes(data)) == (entry.size, entry.crc32c), entry.path
        assert data == (savedmodel / entry.path).read_bytes(), f"{entry.path} differs from the exported SavedModel"
    assert (manifest.model, manifest.version, manifest.step, manifest.checkpoint) == (
        "example", str(STEP), STEP, f"/training/model.ckpt-{STEP}",
    )
    assert manifest.blessed and manifest.metrics == METRICS
    marker = read_marker(storage, layout.marker)
    assert marker is not None and marker.export is not None
    assert (marker.export.strategy, marker.export.step, marker.export.metrics) == ("tfx", STEP, METRICS)
    assert survey(storage, storage.join(destination, "example")).views[str(STEP)].complete
    record = Ledger(destination, "example", storage).load().record(STEP)
    assert record is not None and record.evaluation is not None and record.evaluation.blessed
    assert record.publications["tfx"].version == str(STEP)
    assert record.publications["tfx"].uri == layout.primary_dir
    # The Model exports page builds its view from that ledger: it lists the version, as best.
    history = build_history(load_config(config), Ledger(destination, "example", storage).load())
    assert history.publication("tfx", str(STEP)) is not None and history.best_step == STEP
    return to_jsonable(manifest)


def test_a_blessed_model_is_published_as_exportflow_publishes_and_a_rerun_publishes_nothing_new(
    tfx_python: Path, savedmodel: Path, tmp_path: Path
) -> None:
    from components.export.savedmodel.verify import signatures_by_tag
    from components.manifest import installed_tensorflow_version

    destination = str(tmp_path / "published")
    config = config_file(tmp_path, destination)
    first = run_pipeline(tfx_python, spec(tmp_path / "run", savedmodel, config))
    assert first.returncode == 0, first.stderr[-3000:]
    storage = storage_for(destination)
    manifest = assert_published_as_exportflow_publishes(storage, destination, savedmodel, config)
    # What the manifest says TF-free (read from saved_model.pb) is what TensorFlow says here.
    assert manifest["tensorflow_version"] == installed_tensorflow_version()
    assert manifest["signatures"] == to_jsonable(signatures_by_tag(str(savedmodel)))

    store = lineage(tfx_python, tmp_path / "run" / "metadata.sqlite")
    (pushed,) = pushed_models(store)
    version_dir = os.path.join(destination, "example", str(STEP))
    assert {k: pushed["properties"][k] for k in ("pushed", "pushed_destination", "pushed_version")} == {
        "pushed": 1, "pushed_destination": version_dir, "pushed_version": str(STEP),
    }
    assert pushed["properties"]["exportflow_already_published"] == 0
    # Lineage: PushedModel <- ExportflowPusher <- (Model, ModelBlessing) <- import_savedmodel.
    by_id = {a["id"]: a for a in store["artifacts"]}
    execution_types = {e["id"]: e["type"] for e in store["executions"]}
    (made,) = [e for e in store["events"] if e["artifact"] == pushed["id"] and e["type"] == "OUTPUT"]
    assert execution_types[made["execution"]].endswith("ExportflowPusher")
    inputs = {e["key"]: by_id[e["artifact"]] for e in store["events"] if e["execution"] == made["execution"] and e["type"] == "INPUT"}
    assert {k: a["type"] for k, a in inputs.items()} == {"model": "Model", "model_blessing": "ModelBlessing"}
    producers = {execution_types[e["execution"]] for e in store["events"] if e["type"] == "OUTPUT" and e["artifact"] in {a["id"] for a in inputs.values()}}
    assert len(producers) == 1 and producers.pop().endswith("import_savedmodel")
    assert all(e["state"] == "COMPLETE" for e in store["executions"])

    before = {rel: (info.size, os.stat(info.uri).st_mtime_ns) for rel, info in relative_objects(storage, destination).items()}
    published_at = Ledger(destination, "example", storage).load().record(STEP).publications["tfx"].published_at
    again = run_pipeline(tfx_python, spec(tmp_path / "run", savedmodel, config))  # the producer runs again too
    assert again.returncode == 0, again.stderr[-3000:]
    rerun = pushed_models(lineage(tfx_python, tmp_path / "run" / "metadata.sqlite"))
    assert len(rerun) == 2 and rerun[1]["properties"]["exportflow_already_published"] == 1
    assert rerun[1]["properties"]["pushed_destination"] == version_dir and rerun[1]["properties"]["pushed"] == 1
    after = {rel: (info.size, os.stat(info.uri).st_mtime_ns) for rel, info in relative_objects(storage, destination).items()}
    assert {k: v for k, v in after.items() if not k.startswith(".exportflow/")} == {
        k: v for k, v in before.items() if not k.startswith(".exportflow/")
    }, "the rerun wrote something at the destination"
    assert Ledger(destination, "example", storage).load().record(STEP).publications["tfx"].published_at == published_at

    import tensorflow as tf  # the published version loads and serves

    loaded = tf.saved_model.load(version_dir, tags=["serve"])
    assert "serving_default" in loaded.signatures


def test_an_unblessed_model_is_not_pushed_and_the_reason_is_recorded(
    tfx_python: Path, savedmodel: Path, tmp_path: Path
) -> None:
    destination = str(tmp_path / "published")
    result = run_pipeline(tfx_python, spec(tmp_path / "run", savedmodel, config_file(tmp_path, destination), blessed=False))
    assert result.returncode == 0, result.stderr[-3000:]
    (pushed,) = pushed_models(lineage(tfx_python, tmp_path / "run" / "metadata.sqlite"))
    assert pushed["properties"]["pushed"] == 0
    assert "pushed_destination" not in pushed["properties"] and "pushed_version" not in pushed["properties"]
    assert pushed["properties"]["not_pushed_reason"] == "not blessed: TFX ModelBlessing: not blessed (blessed=0)"
    storage = storage_for(destination)
    assert loadable_versions(storage, destination) == []
    assert not os.path.exists(os.path.join(destination, "example"))
    record = Ledger(destination, "example", storage).load().record(STEP)
    assert record is not None and record.evaluation is not None and not record.evaluation.blessed
    assert record.evaluation.summary == pushed["properties"]["not_pushed_reason"]
    assert record.publications == {} and record.exports == {}


def test_kill_9_at_every_step_of_the_publish_leaves_nothing_loadable_and_a_rerun_completes(
    tfx_python: Path, savedmodel: Path, tmp_path: Path
) -> None:
    kills: list[dict[str, Any]] = []
    k = 0
    while True:
        k += 1
        destination = str(tmp_path / f"k{k}" / "published")
        run = spec(tmp_path / f"k{k}" / "run", savedmodel, config_file(tmp_path / f"k{k}", destination))
        event = kill_at(tfx_python, run, pause_at=k)
        if event is None:  # the publish has fewer than k steps: it ran to the end
            break
        kills.append(event)
        storage = storage_for(destination)
        assert_nothing_partial_is_loadable(storage, destination)
        rerun = run_pipeline(tfx_python, run)
        assert rerun.returncode == 0, (event, rerun.stderr[-3000:])
        assert_published_as_exportflow_publishes(storage, destination, savedmodel, run["config"])
        assert not [p for p in relative_objects(storage, destination) if os.path.basename(p).startswith(".tmp-")]
    kinds = [e["kind"] for e in kills]
    assert len(kills) >= 4 and {"lease", "renamed", "marker"} <= set(kinds), kinds


def test_a_gcs_destination_on_the_emulator(tfx_python: Path, savedmodel: Path, tmp_path: Path, gcs: Any, gcs_bucket: str) -> None:
    destination = f"gs://{gcs_bucket}/tfx"
    run = spec(tmp_path / "run", savedmodel, config_file(tmp_path, destination))
    result = run_pipeline(tfx_python, run, env={"STORAGE_EMULATOR_HOST": gcs.endpoint})
    assert result.returncode == 0, result.stderr[-3000:]
    storage = storage_for(destination)
    assert_published_as_exportflow_publishes(storage, destination, savedmodel, run["config"])
    assert assert_nothing_partial_is_loadable(storage, destination) == [f"example/{STEP}"]
    (pushed,) = pushed_models(lineage(tfx_python, tmp_path / "run" / "metadata.sqlite"))
    assert pushed["properties"]["pushed_destination"] == f"{destination}/example/{STEP}"


def test_a_missing_config_fails_the_component_naming_the_file_and_publishes_nothing(
    tfx_python: Path, savedmodel: Path, tmp_path: Path
) -> None:
    missing = str(tmp_path / "configs" / "nope.yaml")
    result = run_pipeline(tfx_python, spec(tmp_path / "run", savedmodel, missing))
    assert result.returncode != 0
    assert f"ConfigError: {missing}: cannot read the file: No such file or directory" in result.stderr
    assert not (tmp_path / "published").exists()


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("unknown_strategy", "TfxPushError: {config}: no strategy named 'nope'; configured: ['tfx']; pass one of them"),
        ("no_savedmodel", "TfxPushError: {pushed}/saved_model.pb does not exist: the Model artifact holds no SavedModel"),
        ("corrupt_savedmodel", "TfxPushError: {pushed}/saved_model.pb is not a SavedModel proto"),
        ("truncated_warmup", f"TfxPushError: {{pushed}}/{WARMUP_PATH} is truncated: record 3 runs past the end"),
        ("too_many_warmup", f"TfxPushError: {WARMUP_PATH} of the Model holds 1001 warmup requests; TF Serving"),
    ],
)
def test_bad_inputs_fail_the_component_with_the_fix_and_publish_nothing(
    tfx_python: Path, savedmodel: Path, tmp_path: Path, case: str, expected: str
) -> None:
    destination = tmp_path / "published"
    config = config_file(tmp_path, str(destination))
    source = tmp_path / "model"
    if case == "no_savedmodel":
        source.mkdir()
    else:
        shutil.copytree(savedmodel, source)
    if case == "corrupt_savedmodel":
        (source / "saved_model.pb").write_bytes(b"\x12\xff\x01not a proto")
    elif case == "truncated_warmup":
        data = write_warmup(source, 3).read_bytes()
        (source / WARMUP_PATH).write_bytes(data[:-5])
    elif case == "too_many_warmup":
        write_warmup(source, 1001)
    result = run_pipeline(tfx_python, spec(tmp_path / "run", source, config, strategy="nope" if case == "unknown_strategy" else None))
    assert result.returncode != 0
    pushed = tmp_path / "run" / "pipeline" / "ExportflowPusher" / "pushed_model" / "2"
    assert expected.format(config=config, pushed=pushed) in result.stderr, result.stderr[-2000:]
    assert not (destination / "example").exists() and not (destination / ".exportflow").exists()


def test_another_model_at_a_published_step_is_refused_with_a_fix_the_component_offers(
    tfx_python: Path, savedmodel: Path, tmp_path: Path
) -> None:
    """The publish protocol's advice ("rerun with force") names an option the component does not have."""
    destination = tmp_path / "published"
    config = config_file(tmp_path, str(destination))
    assert run_pipeline(tfx_python, spec(tmp_path / "first", savedmodel, config)).returncode == 0
    published_pb = (destination / "example" / str(STEP) / "saved_model.pb").read_bytes()
    other = tmp_path / "other"
    shutil.copytree(savedmodel, other)
    write_warmup(other, 3)  # other content, same step
    result = run_pipeline(tfx_python, spec(tmp_path / "second", other, config))
    assert result.returncode != 0
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("exportflow_tfx.errors.TfxPushError")]
    assert f"version {STEP} of example is already published at {destination} with other content" in line
    assert "int custom property 'step' names that version: give a new Model a step" in line and "force" not in line
    assert (destination / "example" / str(STEP) / "saved_model.pb").read_bytes() == published_pb
    assert loadable_versions(storage_for(str(destination)), str(destination)) == [f"example/{STEP}"]


def test_the_example_pipeline_command_says_what_it_published(tfx_python: Path, savedmodel: Path, tmp_path: Path) -> None:
    """README's command: without a line of its own it exits 0 and prints only TFX's warnings, whether it
    published, found the version published, or pushed nothing."""
    destination = tmp_path / "published"
    config = config_file(tmp_path, str(destination))

    def example(*extra: str) -> str:
        result = subprocess.run(
            [str(tfx_python), "-m", "exportflow_tfx.example_pipeline", "--saved-model", str(savedmodel),
             "--config", config, "--root", str(tmp_path / "root"), *extra],
            env=child_env(), capture_output=True, text=True, check=False, timeout=300,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    version_dir = destination / "example" / str(STEP)
    assert example("--step", str(STEP)) == f"published version {STEP} at {version_dir}\n"
    assert example("--step", str(STEP)) == f"version {STEP} was already published at {version_dir}: nothing new\n"
    assert example("--step", "400", "--not-blessed") == (
        "not pushed: not blessed: TFX ModelBlessing: not blessed (blessed=0)\n"
    )


def test_a_model_without_a_step_is_published_as_its_mlmd_id_with_its_warmup_requests(
    tfx_python: Path, savedmodel: Path, tmp_path: Path
) -> None:
    source = tmp_path / "model"
    shutil.copytree(savedmodel, source)
    write_warmup(source, 3)
    destination = str(tmp_path / "published")
    result = run_pipeline(tfx_python, spec(tmp_path / "run", source, config_file(tmp_path, destination), step=None))
    assert result.returncode == 0, result.stderr[-3000:]
    store = lineage(tfx_python, tmp_path / "run" / "metadata.sqlite")
    (model,) = [a for a in store["artifacts"] if a["type"] == "Model"]
    assert "step" not in model["properties"]  # as TFX's Trainer leaves it
    (pushed,) = pushed_models(store)
    assert pushed["properties"]["pushed_version"] == str(model["id"])
    storage = storage_for(destination)
    layout = layout_for(storage, destination, "example", str(model["id"]), [None])
    manifest = read_manifest(storage.read_bytes(storage.join(layout.primary_dir, MANIFEST_PATH)))
    assert (manifest.step, manifest.checkpoint) == (model["id"], model["uri"])
    assert manifest.extra["warmup_records"] == 3
    assert (Path(layout.primary_dir) / WARMUP_PATH).read_bytes() == (source / WARMUP_PATH).read_bytes()
    assert assert_nothing_partial_is_loadable(storage, destination) == [f"example/{model['id']}"]


@pytest.mark.parametrize("infra_blessed", [True, False])
def test_an_infra_blessing_is_required_when_given(
    tfx_python: Path, savedmodel: Path, tmp_path: Path, infra_blessed: bool
) -> None:
    destination = str(tmp_path / "published")
    run = spec(tmp_path / "run", savedmodel, config_file(tmp_path, destination), infra_blessed=infra_blessed)
    result = run_pipeline(tfx_python, run)
    assert result.returncode == 0, result.stderr[-3000:]
    store = lineage(tfx_python, tmp_path / "run" / "metadata.sqlite")
    (pushed,) = pushed_models(store)
    (made,) = [e for e in store["events"] if e["artifact"] == pushed["id"] and e["type"] == "OUTPUT"]
    inputs = {e["key"] for e in store["events"] if e["execution"] == made["execution"] and e["type"] == "INPUT"}
    assert inputs == {"model", "model_blessing", "infra_blessing"}
    storage = storage_for(destination)
    if infra_blessed:
        assert pushed["properties"]["pushed"] == 1
        assert_published_as_exportflow_publishes(storage, destination, savedmodel, run["config"])
    else:
        assert pushed["properties"]["pushed"] == 0
        assert pushed["properties"]["not_pushed_reason"] == (
            "not blessed: TFX ModelBlessing: blessed; TFX InfraBlessing: not blessed (blessed=0)"
        )
        assert loadable_versions(storage, destination) == []


def test_retention_keeps_the_configured_newest_versions(tfx_python: Path, savedmodel: Path, tmp_path: Path) -> None:
    destination = str(tmp_path / "published")
    config = config_file(tmp_path, destination)  # keep: 3; best by the lowest loss
    for step in (100, 200, 300, 400):
        run = spec(tmp_path / "run", savedmodel, config, step=step, checkpoint=f"/training/model.ckpt-{step}",
                   metrics={"loss": 1.0 - step / 1000})
        result = run_pipeline(tfx_python, run)
        assert result.returncode == 0, (step, result.stderr[-3000:])
    storage = storage_for(destination)
    assert assert_nothing_partial_is_loadable(storage, destination) == ["example/200", "example/300", "example/400"]
    state = Ledger(destination, "example", storage).load()
    assert sorted(r.step for r in state.checkpoints.values() if "tfx" in r.publications) == [100, 200, 300, 400]
    assert state.best["tfx"].step == 400
