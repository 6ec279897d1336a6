"""Checkpoint discovery on local disk and in the GCS emulator: completeness, the state file, "new" per
ledger and configuration, policies and caps, and the errors for bad model directories.

The real trained example model is used where TensorFlow's own files matter (uploaded into the emulator
bucket for GCS); small fake files named like checkpoints where only names and sizes do.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from components.artifacts import CheckpointArtifact, EvaluationArtifact
from components.discovery.errors import (
    CheckpointVanished,
    DiscoveryError,
    IncompleteCheckpoint,
    ModelDirError,
)
from components.discovery.executor import discover, list_checkpoints
from components.discovery.spec import DiscoveryParams
from components.ledger.schema import CheckpointRecord, LedgerState
from components.storage import storage_for
from tests.support.example_pipeline import upload_folder


def write_fake_checkpoint(
    folder: Path, step: int, shards: int = 1, size: int = 16, prefix: str = "model.ckpt"
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{prefix}-{step}.index").write_bytes(b"i" * size)
    for shard in range(shards):
        (folder / f"{prefix}-{step}.data-{shard:05d}-of-{shards:05d}").write_bytes(b"d" * size)


def write_state_file(folder: Path, steps: list[int], prefix: str = "model.ckpt") -> None:
    lines = [f'model_checkpoint_path: "{prefix}-{steps[-1]}"']
    lines += [f'all_model_checkpoint_paths: "{prefix}-{s}"' for s in steps]
    (folder / "checkpoint").write_text("\n".join(lines) + "\n")


def params(model_dir: str, **kwargs) -> DiscoveryParams:
    return DiscoveryParams(model_name="example", model_dir=model_dir, **kwargs)


def evaluated(step: int, blessed: bool, digest: str | None) -> CheckpointRecord:
    checkpoint = CheckpointArtifact(uri=f"/m/model.ckpt-{step}", model_name="example", step=step)
    evaluation = EvaluationArtifact(
        uri=checkpoint.uri, checkpoint=checkpoint, metrics={"auc": 0.5}, blessed=blessed, config_digest=digest
    )
    return CheckpointRecord(step=step, uri=checkpoint.uri, evaluation=evaluation)


@pytest.fixture(params=["local", "gcs"])
def messy_model_dir(request: pytest.FixtureRequest, model_copy, tmp_path: Path) -> str:
    """The trained model plus the things a real model dir holds: a checkpoint the state file missed,
    temp files, a half-written checkpoint, the trainer's subfolders. Local path or gs:// URI."""
    folder = model_copy.model_dir
    # Trainer died after writing 400 but before updating the state file: complete, not named.
    for src in folder.glob("model.ckpt-300.*"):
        shutil.copyfile(src, folder / src.name.replace("-300.", "-400."))
    # TensorFlow's own temp names while saving, and a copy tool's partial file.
    (folder / "model.ckpt-500.index.tempstate8412").write_bytes(b"x" * 10)
    temp_dir = folder / "model.ckpt-500_temp_3f2a" / "part-00000-of-00001.data-00000-of-00001"
    temp_dir.parent.mkdir()
    temp_dir.write_bytes(b"x" * 10)
    (folder / "model.ckpt-500.data-00000-of-00001.part").write_bytes(b"x" * 10)
    # Half-written: the index and one of two shards; and one whose shard was created but not written.
    (folder / "model.ckpt-600.index").write_bytes(b"x" * 10)
    (folder / "model.ckpt-600.data-00000-of-00002").write_bytes(b"x" * 10)
    (folder / "model.ckpt-700.index").write_bytes(b"x" * 10)
    (folder / "model.ckpt-700.data-00000-of-00001").write_bytes(b"")
    (folder / "eval").mkdir(exist_ok=True)
    (folder / "eval" / "events.out.tfevents.1.host").write_bytes(b"")
    if request.param == "local":
        return str(folder)
    bucket = request.getfixturevalue("gcs_bucket")
    return upload_folder(folder, f"gs://{bucket}/models/example")


def test_complete_checkpoints_state_file_first_plus_the_ones_it_missed(messy_model_dir: str) -> None:
    listing = list_checkpoints(messy_model_dir)
    assert listing.steps == [0, 100, 200, 300, 400]
    assert listing.named == ("model.ckpt-300", "model.ckpt-0", "model.ckpt-100", "model.ckpt-200")
    assert "model.ckpt-400" not in listing.named  # found from the listing alone
    assert sorted(listing.incomplete) == ["model.ckpt-600", "model.ckpt-700"]
    assert listing.incomplete["model.ckpt-600"].missing() == ["model.ckpt-600.data-00001-of-00002"]
    assert listing.incomplete["model.ckpt-700"].missing() == ["model.ckpt-700.data-00000-of-00001 (empty)"]

    found = discover(params(messy_model_dir), LedgerState(model="example"))
    assert [c.step for c in found] == [0, 100, 200, 300, 400]
    storage = storage_for(messy_model_dir)
    assert found[-1].uri == storage.join(messy_model_dir, "model.ckpt-400")
    assert [f.path for f in found[-1].files] == ["model.ckpt-400.index", "model.ckpt-400.data-00000-of-00001"]
    sizes = {os.path.basename(i.uri): i.size for i in storage.list_files(messy_model_dir)}
    assert all(f.size == sizes[f.path] > 0 for f in found[-1].files)


def test_one_listing_and_no_stat_per_file(tmp_path: Path) -> None:
    for step in range(50):
        write_fake_checkpoint(tmp_path / "model", step, shards=4)
    write_state_file(tmp_path / "model", list(range(45, 50)))
    calls: list[str] = []
    real = storage_for(str(tmp_path))

    class Counting:  # our own Storage seam, counting the verbs discovery uses
        def __getattr__(self, name):
            attr = getattr(real, name)
            if callable(attr) and name != "join":
                calls.append(name)
            return attr

    found = discover(
        params(str(tmp_path / "model"), max_per_run=100), LedgerState(model="example"), Counting()
    )
    assert len(found) == 50 and all(len(c.files) == 5 for c in found)
    assert calls == ["list_files", "read_bytes"]  # 250 checkpoint files: one listing, the state file read


def test_state_file_names_win_a_step_clash(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    write_fake_checkpoint(folder, 300, prefix="model.ckpt")
    write_fake_checkpoint(folder, 300, prefix="backup.ckpt")
    write_state_file(folder, [300], prefix="model.ckpt")
    assert list_checkpoints(str(folder)).complete[300].prefix == "model.ckpt-300"


def test_new_means_not_handled_for_this_model_and_configuration(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    for step in (100, 200, 300, 400):
        write_fake_checkpoint(folder, step)
    published = CheckpointRecord(step=100, uri="/m/model.ckpt-100", publications={"all_modes": object()})  # type: ignore[dict-item]
    state = LedgerState(model="example")
    for record in (
        published,
        evaluated(200, blessed=False, digest="A"),
        evaluated(300, blessed=True, digest="A"),
    ):
        state = state.with_record(record)
    same_config = discover(params(str(folder), config_digest="A"), state)
    # 100 published, 200 rejected under A; 300 blessed but not published yet (a run died): still new.
    assert [c.step for c in same_config] == [300, 400]
    # Other thresholds (digest B): the rejection of 200 does not carry over; a publication does.
    assert [c.step for c in discover(params(str(folder), config_digest="B"), state)] == [200, 300, 400]
    # A version-1 evaluation (no digest) counts as made under the current configuration.
    legacy = state.with_record(evaluated(200, blessed=False, digest=None))
    assert [c.step for c in discover(params(str(folder), config_digest="B"), legacy)] == [300, 400]
    # force takes handled ones too.
    assert [c.step for c in discover(params(str(folder), include_handled=True), state)] == [
        100,
        200,
        300,
        400,
    ]


def test_policies_and_cap(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    for step in range(100, 1300, 100):
        write_fake_checkpoint(folder, step)
    empty = LedgerState(model="example")

    def steps(**kwargs) -> list[int]:
        return [c.step for c in discover(params(str(folder), **kwargs), empty)]

    assert steps(max_per_run=3) == [100, 200, 300]  # all_new: oldest first, so a backlog drains in order
    assert steps(policy="latest") == [1200]
    assert steps(policy="every_nth", every_n_steps=400) == [400, 800, 1200]
    assert steps(policy="every_nth", every_n_steps=200, max_per_run=2) == [200, 400]
    # latest only means the latest: once it is handled, an older unhandled one is not taken instead.
    handled = empty.with_record(evaluated(1200, blessed=False, digest=None))
    assert discover(params(str(folder), policy="latest"), handled) == []
    with pytest.raises(ValueError, match="every_n_steps"):
        params(str(folder), policy="every_nth")


def test_asked_for_step_errors_say_what_is_wrong(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    for step in (100, 200, 300):
        write_fake_checkpoint(folder, step, shards=2)
    write_state_file(folder, [100, 200, 300, 400])  # 400: retention deleted it, state file not yet updated
    (folder / "model.ckpt-200.data-00001-of-00002").unlink()
    state = LedgerState(model="example")
    with pytest.raises(
        IncompleteCheckpoint,
        match=r"model.ckpt-200 is incomplete: missing model.ckpt-200.data-00001-of-00002",
    ):
        discover(params(str(folder), only_step=200), state)
    with pytest.raises(
        CheckpointVanished, match="named by the state file but its files are gone"
    ) as vanished:
        discover(params(str(folder), only_step=400), state)
    assert vanished.value.retryable
    with pytest.raises(DiscoveryError, match=r"no checkpoint with step 250 .* 2 complete: 100, 300"):
        discover(params(str(folder), only_step=250), state)
    # The automatic run takes what is complete and reports the rest in the listing.
    assert [c.step for c in discover(params(str(folder)), state)] == [100, 300]
    listing = list_checkpoints(str(folder))
    assert listing.named_missing == ("model.ckpt-400",) and list(listing.incomplete) == ["model.ckpt-200"]


def test_missing_and_empty_model_dirs(tmp_path: Path) -> None:
    state = LedgerState(model="example")
    with pytest.raises(ModelDirError, match="does not exist; point model_dir at the trainer's output folder"):
        discover(params(str(tmp_path / "nope")), state)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelDirError, match="is empty"):
        discover(params(str(tmp_path / "empty")), state)
    (tmp_path / "folders" / "eval").mkdir(parents=True)
    with pytest.raises(ModelDirError, match="holds folders only"):
        discover(params(str(tmp_path / "folders")), state)
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(ModelDirError, match="cannot list model_dir"):
        discover(params(str(tmp_path / "a-file")), state)


def test_missing_and_empty_model_dirs_on_gcs(gcs_bucket: str) -> None:
    state = LedgerState(model="example")
    with pytest.raises(ModelDirError, match="has no objects"):
        discover(params(f"gs://{gcs_bucket}/nothing-here"), state)
    with pytest.raises(ModelDirError, match="cannot list model_dir"):
        discover(params("gs://no-such-bucket-exportflow/model"), state)


def test_trained_model_only_files_with_sizes_from_one_gcs_listing(trained_model, gcs_bucket: str) -> None:
    uri = upload_folder(trained_model.model_dir, f"gs://{gcs_bucket}/m")
    infos = storage_for(uri).list_files(uri)
    names = sorted(os.path.basename(i.uri) for i in infos)
    assert "checkpoint" in names and "model.ckpt-300.index" in names
    assert not any("/" in n for n in names)  # eval/ and other folders are not descended into
    assert all(i.size == (trained_model.model_dir / os.path.basename(i.uri)).stat().st_size for i in infos)
