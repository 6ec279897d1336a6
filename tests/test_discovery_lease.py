"""Leases: a chosen checkpoint stays readable while the trainer's retention deletes it, on local disk
(hard links) and in the GCS emulator (server-side copies); holds per strategy; stale leases; a
checkpoint that vanishes before it is pinned."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from components.discovery import lease
from components.discovery.errors import CheckpointVanished
from components.discovery.executor import discover
from components.discovery.integrity import verify_checkpoint
from components.discovery.spec import DiscoveryParams
from components.ledger.schema import LedgerState
from components.pipeline.options import RunOptions
from components.pipeline.stages import discover_stage
from components.storage import storage_for
from tests.support.example_pipeline import upload_folder


def found(model_dir: str, **kwargs):
    params = DiscoveryParams(model_name="example", model_dir=model_dir, **kwargs)
    return discover(params, LedgerState(model="example"))


def trainer_deletes(model_dir: str, step: int) -> None:
    """What keep_checkpoint_max does: remove the checkpoint's files by name."""
    storage = storage_for(model_dir)
    for info in storage.list_files(model_dir):
        if os.path.basename(info.uri).startswith(f"model.ckpt-{step}."):
            storage.delete(info.uri)


def test_local_pin_is_a_hard_link_that_survives_the_trainers_delete(model_copy, tmp_path: Path) -> None:
    import tensorflow as tf

    model_dir = str(model_copy.model_dir)
    checkpoint = found(model_dir, only_step=300)[0]
    root = os.path.join(model_dir, lease.LEASES_FOLDER)
    pinned = lease.pin(checkpoint, root, ["all_modes"])
    assert pinned.pinned_uri.startswith(root + "/model.ckpt-300.")
    assert pinned.readable_prefix == pinned.pinned_uri
    for entry in checkpoint.files:
        original = os.stat(os.path.join(model_dir, entry.path))
        copy = os.stat(os.path.join(os.path.dirname(pinned.pinned_uri), entry.path))
        assert copy.st_ino == original.st_ino and original.st_nlink == 2  # O(1): no bytes copied

    trainer_deletes(model_dir, 300)
    assert 300 not in [c.step for c in found(model_dir)]
    verify_checkpoint(pinned)  # index and every shard still whole
    reader = tf.train.load_checkpoint(pinned.pinned_uri)
    assert reader.get_tensor("global_step") == 300
    assert lease.release(pinned, "all_modes")
    assert os.listdir(root) == []


def test_gcs_pin_is_a_server_side_copy_that_survives_the_trainers_delete(
    trained_model, gcs_bucket: str, tmp_path: Path
) -> None:
    import tensorflow as tf

    model_dir = upload_folder(trained_model.model_dir, f"gs://{gcs_bucket}/models/example")
    storage = storage_for(model_dir)
    checkpoint = found(model_dir, only_step=200)[0]
    root = storage.join(model_dir, lease.LEASES_FOLDER)
    pinned = lease.pin(checkpoint, root, ["all_modes", "serving"])
    lease_dir = pinned.pinned_uri.rsplit("/", 1)[0]
    for entry in checkpoint.files:
        original = storage.stat(storage.join(model_dir, entry.path))
        copy = storage.stat(storage.join(lease_dir, entry.path))
        assert (copy.size, copy.crc32c) == (original.size, original.crc32c)

    trainer_deletes(model_dir, 200)
    assert 200 not in [c.step for c in found(model_dir)]
    verify_checkpoint(pinned)
    local = lease.local_prefix(pinned, str(tmp_path / "scratch"))
    assert tf.train.load_checkpoint(local).get_tensor("global_step") == 200
    assert not lease.release(pinned, "all_modes")  # "serving" still holds it
    assert lease.pinned_files_present(pinned)
    assert lease.release(pinned, "serving")
    assert storage.list_files(lease_dir) == []


def test_holds_per_strategy_and_release_all(model_copy) -> None:
    model_dir = str(model_copy.model_dir)
    root = os.path.join(model_dir, lease.LEASES_FOLDER)
    a, b = found(model_dir, only_step=100)[0], found(model_dir, only_step=200)[0]
    pinned_a = lease.pin(a, root, ["one", "two"])
    pinned_b = lease.pin(b, root, ["one"])
    assert not lease.release(pinned_a, "one")
    assert lease.release(pinned_a, "two")
    assert lease.release(pinned_b)  # no holder named: the whole lease goes (e.g. not blessed)
    assert lease.release(None, "one") is False  # nothing pinned: nothing to do
    assert os.listdir(root) == []


def test_stale_leases_are_cleaned_fresh_ones_kept(model_copy) -> None:
    model_dir = str(model_copy.model_dir)
    root = os.path.join(model_dir, lease.LEASES_FOLDER)
    now = 1_800_000_000
    old = lease.pin(found(model_dir, only_step=100)[0], root, ["s"], now=now - 25 * 3600)
    fresh = lease.pin(found(model_dir, only_step=200)[0], root, ["s"], now=now - 3600)
    os.makedirs(os.path.join(root, "not-a-lease"))
    removed = lease.clean_stale(root, 24 * 3600, now=now)
    assert removed == [os.path.basename(os.path.dirname(old.pinned_uri))]
    assert sorted(os.listdir(root)) == sorted(
        [os.path.basename(os.path.dirname(fresh.pinned_uri)), "not-a-lease"]
    )


def test_vanished_before_pinned_is_retryable_and_leaves_nothing(model_copy) -> None:
    model_dir = str(model_copy.model_dir)
    root = os.path.join(model_dir, lease.LEASES_FOLDER)
    chosen = found(model_dir)
    assert [c.step for c in chosen] == [0, 100, 200, 300]
    trainer_deletes(model_dir, 200)  # between listing and pinning
    with pytest.raises(
        CheckpointVanished, match=r"model.ckpt-200 \(step 200\) vanished before it could be pinned"
    ) as err:
        lease.pin_all(chosen, root, ["all_modes"], ttl_seconds=3600)
    assert err.value.retryable
    assert os.listdir(root) == []  # 0 and 100 were pinned first, then released; 200's half lease removed
    # The retry lists again and takes what is still there.
    again = lease.pin_all(found(model_dir), root, ["all_modes"], ttl_seconds=3600)
    assert [c.step for c in again] == [0, 100, 300]


def test_discover_stage_pins_every_chosen_checkpoint_for_each_strategy(model_copy, make_config) -> None:
    config = make_config(model_copy)
    chosen = discover_stage(config, RunOptions(max_checkpoints=2))
    assert [c.step for c in chosen] == [0, 100]
    root, ttl = lease.lease_settings(config)
    assert root == os.path.join(config.model_dir, ".exportflow-leases") and ttl == 24 * 3600
    for checkpoint in chosen:
        lease_dir = os.path.dirname(checkpoint.pinned_uri)
        assert os.path.dirname(lease_dir) == root
        holds = sorted(n for n in os.listdir(lease_dir) if n.startswith("hold."))
        assert holds == [f"hold.{s.name}" for s in config.strategies]
        verify_checkpoint(checkpoint)
