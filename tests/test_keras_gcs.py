"""A Keras model whose trainer writes its checkpoints to a bucket: model_dir, staging and destination on
the real GCS emulator (loopback).

A GCS object is visible only once its upload is finalized, but a finalized object can still hold a
truncated file (a copy of a checkpoint still being written), so discovery judges each new object by a
ranged read of its HDF5 superblock or zip end record, never by downloading it. Evaluation and export fetch
the pinned object through the worker's CRC32C-checked scratch cache. The end-to-end test runs the plain
runner on the Keras example; what is published answers as ``model.predict`` in the Keras runtime.
"""

from __future__ import annotations

import os
import sys
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from components.artifacts import CheckpointArtifact, EvaluationArtifact
from components.config import load_config
from components.discovery import lease
from components.discovery.errors import IncompleteCheckpoint
from components.discovery.executor import discover, list_checkpoints
from components.discovery.spec import DiscoveryParams
from components.keras.checkpoint import local_checkpoint_file
from components.keras.errors import CheckpointFetchFailed
from components.ledger import LedgerState
from components.ledger.schema import CheckpointRecord
from components.pipeline.runner import run_pipeline
from components.staging.cache import ScratchCache
from components.storage import Storage, storage_for
from components.storage.gcs import GCSStorage
from tests.support.example_pipeline import write_config
from tests.support.keras_env import KerasModel, keras_config_dict, last_json, run_keras, save_whole_model
from tests.support.keras_published import CHECK_PUBLISHED

PATTERN = "ckpt-{epoch:03d}.weights.h5"


def weights_bytes(tmp_path: Path, rows: int = 64) -> bytes:
    """A whole HDF5 file shaped like a Keras weights file."""
    path = tmp_path / f"weights-{rows}.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("layers/dense/vars/0", data=np.ones((rows, 8), dtype="float32"))
    return path.read_bytes()


def keras_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{}" * 500)
    return path.read_bytes()


class CountingReads:
    """Our own Storage seam, recording the ranged reads discovery makes."""

    def __init__(self, real: Storage) -> None:
        self.real = real
        self.ranged: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def read_range(self, uri: str, start: int, length: int) -> bytes:
        self.ranged.append(uri.rpartition("/")[2])
        return self.real.read_range(uri, start, length)


def params(model_dir: str, pattern: str = PATTERN, **extra: Any) -> DiscoveryParams:
    return DiscoveryParams(model_name="k", model_dir=model_dir, checkpoint_pattern=pattern, **extra)


def handled(*steps: int) -> LedgerState:
    """A ledger where ``steps`` were evaluated and not blessed: final outcomes, so not new."""
    state = LedgerState("k")
    for step in steps:
        checkpoint = CheckpointArtifact(uri=f"gs://b/m/ckpt-{step:03d}.weights.h5", model_name="k", step=step)
        evaluation = EvaluationArtifact(uri=checkpoint.uri, checkpoint=checkpoint, metrics={}, blessed=False)
        state = state.with_record(CheckpointRecord(step=step, uri=checkpoint.uri, evaluation=evaluation))
    return state


def test_truncated_and_empty_objects_in_a_bucket_are_not_taken(gcs_bucket: str, tmp_path: Path) -> None:
    model_dir = f"gs://{gcs_bucket}/keras/model"
    storage = storage_for(model_dir)
    whole = weights_bytes(tmp_path)
    storage.write_bytes(f"{model_dir}/ckpt-001.weights.h5", whole)
    storage.write_bytes(f"{model_dir}/ckpt-002.weights.h5", whole[: len(whole) // 2])  # a copy of a file being written
    storage.write_bytes(f"{model_dir}/ckpt-003.weights.h5", b"")
    storage.write_bytes(f"{model_dir}/ckpt-004.weights.h5", b"not HDF5 at all")

    listing = list_checkpoints(model_dir, pattern=PATTERN)
    assert listing.steps == [1]
    assert f"HDF5 file is {len(whole) // 2} bytes but its superblock says {len(whole)}" in (
        listing.incomplete["ckpt-002.weights.h5"].problem
    )
    assert listing.incomplete["ckpt-003.weights.h5"].problem == "empty"
    assert "no HDF5 superblock" in listing.incomplete["ckpt-004.weights.h5"].problem
    assert [c.step for c in discover(params(model_dir), LedgerState("k"))] == [1]
    with pytest.raises(IncompleteCheckpoint, match=r"ckpt-002.weights.h5 \(HDF5 file is \d+ bytes but its superblock"):
        discover(params(model_dir, only_step=2), LedgerState("k"))

    storage.write_bytes(f"{model_dir}/ckpt-002.weights.h5", whole)  # the trainer's copy, finished
    (checkpoint,) = discover(params(model_dir, only_step=2), LedgerState("k"))
    assert checkpoint.uri == f"{model_dir}/ckpt-002.weights.h5"
    assert [(f.path, f.size) for f in checkpoint.files] == [("ckpt-002.weights.h5", len(whole))]


def test_a_keras_object_without_its_zip_end_record_is_not_taken(gcs_bucket: str, tmp_path: Path) -> None:
    model_dir = f"gs://{gcs_bucket}/keras/whole"
    storage = storage_for(model_dir)
    whole = keras_bytes(tmp_path)
    storage.write_bytes(f"{model_dir}/model-5.keras", whole)
    storage.write_bytes(f"{model_dir}/model-6.keras", whole[:-10])
    listing = list_checkpoints(model_dir, pattern="model-{step}.keras")
    assert listing.steps == [5]
    assert "no zip end record" in listing.incomplete["model-6.keras"].problem


def test_only_new_objects_are_read_and_only_a_few_bytes_each(gcs_bucket: str, tmp_path: Path) -> None:
    model_dir = f"gs://{gcs_bucket}/keras/many"
    storage = storage_for(model_dir)
    for epoch in range(1, 7):
        storage.write_bytes(f"{model_dir}/ckpt-{epoch:03d}.weights.h5", weights_bytes(tmp_path, rows=64 * epoch))
    counting = CountingReads(storage)
    found = discover(params(model_dir, max_per_run=10), handled(1, 2, 3, 4), counting)  # type: ignore[arg-type]
    assert [c.step for c in found] == [5, 6]
    assert sorted(counting.ranged) == ["ckpt-005.weights.h5", "ckpt-006.weights.h5"]

    counting.ranged.clear()
    (only,) = discover(params(model_dir, only_step=2, include_handled=True), handled(1, 2), counting)  # type: ignore[arg-type]
    assert only.step == 2 and counting.ranged == ["ckpt-002.weights.h5"]

    reads: list[tuple[int, int]] = []
    real_range = GCSStorage.read_range

    def sized(self: GCSStorage, uri: str, start: int, length: int) -> bytes:
        reads.append((start, length))
        return real_range(self, uri, start, length)

    GCSStorage.read_range = sized  # type: ignore[method-assign]
    try:
        list_checkpoints(model_dir, pattern=PATTERN)
    finally:
        GCSStorage.read_range = real_range  # type: ignore[method-assign]
    assert reads == [(0, 64)] * 6  # the superblock only, never the object


def pinned_checkpoint(model_dir: str, data: bytes, scratch: Path) -> CheckpointArtifact:
    storage = storage_for(model_dir)
    storage.write_bytes(f"{model_dir}/ckpt-001.weights.h5", data)
    (checkpoint,) = discover(params(model_dir), LedgerState("k"))
    return lease.pin(checkpoint, f"{model_dir}/.exportflow-leases", ["evaluate"])


def test_the_pinned_object_is_fetched_through_the_cache(gcs_bucket: str, tmp_path: Path) -> None:
    model_dir = f"gs://{gcs_bucket}/keras/fetch"
    whole = weights_bytes(tmp_path)
    checkpoint = pinned_checkpoint(model_dir, whole, tmp_path)
    cache = ScratchCache(str(tmp_path / "cache"))

    path = local_checkpoint_file(checkpoint, str(tmp_path / "eval"), cache)
    assert path == str(tmp_path / "eval" / "ckpt-001.weights.h5")
    assert Path(path).read_bytes() == whole
    assert (cache.stats.misses, cache.stats.bytes_downloaded) == (1, len(whole))
    local_checkpoint_file(checkpoint, str(tmp_path / "export"), cache)
    assert cache.stats.hits == 1  # a second stage on this worker downloads nothing

    storage_for(model_dir).delete_prefix(checkpoint.pinned_uri.rpartition("/")[0])  # the lease reaped
    again = local_checkpoint_file(checkpoint, str(tmp_path / "after"), cache)
    assert Path(again).read_bytes() == whole  # the original, same bytes: a cache hit
    assert cache.stats.hits == 2


def test_a_fetch_whose_bytes_do_not_match_the_crc32c_leaves_nothing(
    gcs_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_dir = f"gs://{gcs_bucket}/keras/corrupt"
    checkpoint = pinned_checkpoint(model_dir, weights_bytes(tmp_path), tmp_path)
    cache = ScratchCache(str(tmp_path / "cache"))
    real_download = GCSStorage.download_file

    def flipped(self: GCSStorage, uri: str, local_path: str) -> None:  # bytes damaged after GCS's own check
        real_download(self, uri, local_path)
        data = bytearray(Path(local_path).read_bytes())
        data[100] ^= 0xFF
        Path(local_path).write_bytes(bytes(data))

    monkeypatch.setattr(GCSStorage, "download_file", flipped)
    with pytest.raises(CheckpointFetchFailed) as caught:
        local_checkpoint_file(checkpoint, str(tmp_path / "eval"), cache)
    assert caught.value.retryable
    assert "ckpt-001.weights.h5 (step 1): fetching" in str(caught.value) and "crc32c" in str(caught.value)
    left = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".h5"]
    assert left == [], left  # no partial download under the cache or the stage's folder
    assert not (tmp_path / "eval" / "ckpt-001.weights.h5").exists()


def keras_gcs_config(model: KerasModel, bucket: str, tmp_path: Path, **overrides: Any) -> Any:
    data = keras_config_dict(
        model,
        f"gs://{bucket}/published",
        model_dir=f"gs://{bucket}/keras/model",
        staging=f"gs://{bucket}/staging",
        scratch_dir=str(tmp_path / "scratch"),
        **overrides,
    )
    return load_config(write_config(data, tmp_path / "configs" / "example_keras.yaml"))


def download_folder(uri: str, target: Path) -> Path:
    storage = storage_for(uri)
    for info in storage.list(uri):
        relative = info.uri[len(uri.rstrip("/")) + 1 :]
        storage.download_file(info.uri, str(target / relative))
    return target


def test_the_runner_publishes_a_keras_model_trained_into_a_bucket(
    keras_trained: KerasModel, gcs_bucket: str, tmp_path: Path
) -> None:
    config = keras_gcs_config(keras_trained, gcs_bucket, tmp_path)
    storage = storage_for(config.model_dir)
    for epoch in keras_trained.epochs:
        name = f"ckpt-{epoch:03d}.weights.h5"
        storage.upload_file(str(keras_trained.model_dir / name), f"{config.model_dir}/{name}")
    whole = (keras_trained.model_dir / "ckpt-002.weights.h5").read_bytes()
    storage.write_bytes(f"{config.model_dir}/ckpt-003.weights.h5", whole[: len(whole) - 1000])  # cut short

    report = run_pipeline(config)

    assert [e.checkpoint.step for e in report.evaluations] == [1, 2]  # epoch 3's object is not taken
    assert all(e.blessed and "click_auc" in e.metrics for e in report.evaluations)
    assert all(e.checkpoint.uri.startswith(f"gs://{gcs_bucket}/keras/model/") for e in report.evaluations)
    assert sorted((p.strategy, p.version) for p in report.published if p.strategy == "latest") == [
        ("latest", "1"), ("latest", "2"),
    ]
    assert lease.count_leases(f"{config.model_dir}/.exportflow-leases") == 0
    published = f"gs://{gcs_bucket}/published/example_keras"
    names = {info.uri[len(published) + 1 :] for info in storage.list(published)}
    assert {"1/saved_model.pb", "2/saved_model.pb", "2/assets.extra/tf_serving_warmup_requests"} <= names

    local = download_folder(published, tmp_path / "published-copy")
    checked = last_json(run_keras(keras_trained.python, CHECK_PUBLISHED, str(local), str(keras_trained.model_dir)))
    assert checked.pop("tf") == "2.21.0"
    for version in ("1", "2"):
        assert checked[version]["same_as_predict"], checked
        assert {"serve", "serving_default"} <= set(checked[version]["signatures"])
        assert checked[version]["warmup_records"] == checked[version]["replayed"] == 20

    again = run_pipeline(config)  # every checkpoint handled: nothing new, epoch 3 still not taken
    assert again.published == () and again.evaluations == ()
    assert not any(p.is_file() and ".part" in p.name for p in (tmp_path / "scratch").rglob("*"))
    assert os.listdir(tmp_path / "scratch" / "cache" / "objects")  # the checkpoints came through the cache


def test_a_keras_model_dir_on_a_storage_plugin_without_ranged_reads_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from components.config import ConfigError
    from tests.support.keras_storage_plugin import SCHEME, install_entry_point

    monkeypatch.syspath_prepend(str(install_entry_point(tmp_path / "site")))
    model = KerasModel(tmp_path / "model", tmp_path / "data", (), Path(sys.executable))
    data = keras_config_dict(model, tmp_path / "published", model_dir=f"{SCHEME}://bucket/keras")
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(data, tmp_path / "configs" / "example_keras.yaml"))
    assert caught.value.field == "model_dir"
    assert "has no read_range" in caught.value.problem and "local disk or gs://" in caught.value.problem


def test_whole_keras_models_in_a_bucket_are_published_without_a_builder(
    keras_trained: KerasModel, gcs_bucket: str, tmp_path: Path
) -> None:
    """``ModelCheckpoint`` with a ``.keras`` filepath into the bucket: loaded as saved from the fetched file."""
    saved = tmp_path / "model-2.keras"
    save_whole_model(keras_trained, 2, saved)
    config = keras_gcs_config(
        keras_trained, gcs_bucket, tmp_path, keras={"checkpoints": "model-{epoch}.keras"},
        strategies=[{"name": "latest", "kind": "latest"}],
    )
    storage = storage_for(config.model_dir)
    storage.upload_file(str(saved), f"{config.model_dir}/model-2.keras")
    storage.write_bytes(f"{config.model_dir}/model-3.keras", saved.read_bytes()[:-30])  # no zip end record

    report = run_pipeline(config)
    assert [e.checkpoint.step for e in report.evaluations] == [2]  # model-3.keras is cut short: not taken
    assert [(p.strategy, p.version) for p in report.published] == [("latest", "2")]
    assert report.evaluations[0].metrics["click_auc"] > 0.6
    local = download_folder(f"gs://{gcs_bucket}/published/example_keras", tmp_path / "published-copy")
    checked = last_json(run_keras(keras_trained.python, CHECK_PUBLISHED, str(local), str(keras_trained.model_dir)))
    assert checked["2"]["same_as_predict"] and checked["2"]["replayed"] == 20, checked
