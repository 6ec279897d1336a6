"""The checkpoint index read without TensorFlow, and the integrity check built on it: a damaged index, a
truncated or missing shard, and shard counts that disagree are each caught with an error naming the file."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from components.discovery.bundle import BundleIndexError, parse_bundle_index
from components.discovery.errors import CorruptCheckpoint, IncompleteCheckpoint
from components.discovery.executor import discover
from components.discovery.integrity import verify_checkpoint
from components.discovery.spec import DiscoveryParams
from components.ledger.schema import LedgerState


def checkpoint_at(model_dir: Path, step: int):
    params = DiscoveryParams(model_name="example", model_dir=str(model_dir), only_step=step)
    return discover(params, LedgerState(model="example"))[0]


def test_index_matches_what_tensorflow_reads(trained_model) -> None:
    import tensorflow as tf

    prefix = str(trained_model.model_dir / "model.ckpt-300")
    index = parse_bundle_index(Path(f"{prefix}.index").read_bytes())
    expected = dict(tf.train.list_variables(prefix))
    variables = index.variables()
    assert {name: list(entry.shape) for name, entry in variables.items()} == expected
    reader = tf.train.load_checkpoint(prefix)
    dtypes = reader.get_variable_to_dtype_map()
    assert all(variables[n].dtype == dtypes[n].as_datatype_enum for n in expected)
    assert index.num_shards == 1
    assert index.shard_extents() == {0: os.path.getsize(f"{prefix}.data-00000-of-00001")}


def test_multi_shard_checkpoint(tmp_path: Path) -> None:
    """Two devices, a sharded Saver: two data shards, each as long as the index says (fresh process: the
    logical devices must be set before TensorFlow starts)."""
    code = textwrap.dedent(
        f"""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        with tf.Graph().as_default():
            with tf.device("/cpu:0"):
                a = tf.compat.v1.get_variable("a", initializer=tf.ones([100, 10]))
            with tf.device("/cpu:1"):
                b = tf.compat.v1.get_variable("b", initializer=tf.ones([7]))
            saver = tf.compat.v1.train.Saver(sharded=True)
            with tf.compat.v1.Session() as session:
                session.run(tf.compat.v1.global_variables_initializer())
                saver.save(session, {str(tmp_path / "model" / "model.ckpt")!r}, global_step=5)
        """
    )
    (tmp_path / "model").mkdir()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    checkpoint = checkpoint_at(tmp_path / "model", 5)
    assert [f.path for f in checkpoint.files] == [
        "model.ckpt-5.index",
        "model.ckpt-5.data-00000-of-00002",
        "model.ckpt-5.data-00001-of-00002",
    ]
    index = verify_checkpoint(checkpoint)
    assert index.num_shards == 2 and sorted(index.variables()) == ["a", "b"]
    extents = index.shard_extents()
    assert sorted(extents.values()) == [7 * 4, 100 * 10 * 4]
    shard = tmp_path / "model" / "model.ckpt-5.data-00001-of-00002"
    shard.unlink()
    with pytest.raises(
        IncompleteCheckpoint, match="data shard .*model.ckpt-5.data-00001-of-00002 is missing"
    ):
        verify_checkpoint(checkpoint)


@pytest.mark.parametrize(
    "damage, message",
    [
        (
            lambda data: data[:20] + bytes(b ^ 0xFF for b in data[20:40]) + data[40:],
            "checksum mismatch .* the index is damaged",
        ),
        (lambda data: b"not an index at all" * 5, "bad magic number"),
        (lambda data: data[:30], "too short"),
    ],
    ids=["flipped-bytes", "garbage", "truncated-index"],
)
def test_damaged_index(model_copy, damage, message: str) -> None:
    checkpoint = checkpoint_at(model_copy.model_dir, 300)
    index = model_copy.model_dir / "model.ckpt-300.index"
    index.write_bytes(damage(index.read_bytes()))
    with pytest.raises(BundleIndexError, match=message):
        parse_bundle_index(index.read_bytes())
    with pytest.raises(
        CorruptCheckpoint,
        match=r"checkpoint .*model.ckpt-300 \(step 300\): the index .*model.ckpt-300.index is damaged",
    ):
        verify_checkpoint(checkpoint)


def test_truncated_shard(model_copy) -> None:
    checkpoint = checkpoint_at(model_copy.model_dir, 200)
    shard = model_copy.model_dir / "model.ckpt-200.data-00000-of-00001"
    size = shard.stat().st_size
    with open(shard, "r+b") as handle:
        handle.truncate(size - 100)
    with pytest.raises(
        CorruptCheckpoint, match=rf"has {size - 100} bytes but the index needs {size} \(truncated"
    ):
        verify_checkpoint(checkpoint)


def test_shard_count_disagreement(model_copy) -> None:
    checkpoint = checkpoint_at(model_copy.model_dir, 100)
    folder = model_copy.model_dir
    (folder / "model.ckpt-100.data-00000-of-00001").rename(folder / "model.ckpt-100.data-00000-of-00002")
    (folder / "model.ckpt-100.data-00001-of-00002").write_bytes(b"x")
    renamed = checkpoint_at(folder, 100)
    with pytest.raises(CorruptCheckpoint, match=r"data files say \[2\] shard\(s\) but the index says 1"):
        verify_checkpoint(renamed)
    assert checkpoint.step == renamed.step
