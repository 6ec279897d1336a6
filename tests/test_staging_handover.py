"""Stages hand a version over by URI: model_dir, staging and destination all on the GCS emulator.

The plain runner runs discover → evaluate → export → warmup → publish; what crossed the worker is counted
at our own Storage seam (``GCSStorage`` upload/download/copy), so "0 variable bytes through the worker"
is measured, not assumed.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.manifest import MANIFEST_PATH, read_manifest
from components.pipeline.options import RunOptions
from components.pipeline.runner import run_pipeline
from components.pipeline.stages import ledger_of
from components.staging.area import staging_area
from components.storage import storage_for
from tests.support.example_pipeline import TrainedModel

STEP = 300


@dataclasses.dataclass
class Traffic:
    """Every call that moves bytes, as (verb, uri, bytes)."""

    calls: list[tuple[str, str, int]] = dataclasses.field(default_factory=list)

    def bytes(self, verb: str, containing: str = "") -> int:
        return sum(size for kind, uri, size in self.calls if kind == verb and containing in uri)

    def uris(self, verb: str) -> list[str]:
        return [uri for kind, uri, _ in self.calls if kind == verb]


@pytest.fixture
def traffic(monkeypatch: pytest.MonkeyPatch) -> Iterator[Traffic]:
    import os

    from components.storage.gcs import GCSStorage

    seen = Traffic()
    upload, download, copy = GCSStorage.upload_file, GCSStorage.download_file, GCSStorage.copy

    def counted_upload(self, local_path, uri, **kwargs):
        seen.calls.append(("upload", uri, os.path.getsize(local_path)))
        return upload(self, local_path, uri, **kwargs)

    def counted_download(self, uri, local_path):
        download(self, uri, local_path)
        seen.calls.append(("download", uri, os.path.getsize(local_path)))

    def counted_copy(self, src_uri, dst_uri, **kwargs):
        info = copy(self, src_uri, dst_uri, **kwargs)
        seen.calls.append(("copy", dst_uri, info.size))
        return info

    monkeypatch.setattr(GCSStorage, "upload_file", counted_upload)
    monkeypatch.setattr(GCSStorage, "download_file", counted_download)
    monkeypatch.setattr(GCSStorage, "copy", counted_copy)
    yield seen


def upload_model(model: TrainedModel, uri: str) -> str:
    storage = storage_for(uri)
    for path in sorted(model.model_dir.rglob("*")):
        if path.is_file():
            storage.upload_file(str(path), storage.join(uri, str(path.relative_to(model.model_dir))))
    return uri


@pytest.fixture
def all_on_gcs(trained_model: TrainedModel, gcs_bucket: str, make_config, tmp_path: Path):
    model_dir = upload_model(trained_model, f"gs://{gcs_bucket}/models/example")
    return make_config(
        trained_model,
        f"gs://{gcs_bucket}/published",
        model_dir=model_dir,
        staging=f"gs://{gcs_bucket}/staging",
        scratch_dir=str(tmp_path / "scratch"),
        strategies=[{"name": "all_modes", "kind": "all_modes", "params": {"by_reference": True}}],
    )


def test_everything_on_gcs_hands_over_by_uri_with_no_variable_bytes_through_the_worker(
    all_on_gcs, gcs_bucket: str, traffic: Traffic
) -> None:
    config = all_on_gcs
    report = run_pipeline(config, RunOptions(checkpoint=STEP))

    (exported,) = report.exports
    (pushed,) = report.published
    staged_uri = f"gs://{gcs_bucket}/staging/all_modes/{STEP}"
    assert exported.uri == staged_uri and exported.variables == "hardlink"  # handed over by URI
    record = ledger_of(config).load().record(STEP)
    assert record.exports["all_modes"].uri == staged_uri  # what XCom and the ledger carry: no local path

    # Variables by reference: server-side copies checkpoint → staging → destination, never uploaded.
    assert traffic.bytes("upload", "/variables/") == 0
    assert traffic.bytes("copy", f"{staged_uri}/variables/") > 0
    assert traffic.bytes("copy", f"{pushed.uri}/variables/") > 0
    assert pushed.bytes_moved == 0 and pushed.bytes_copied == pushed.bytes_total
    # Warmup ran on the worker that exported: every staged object came from the scratch cache.
    assert not [uri for uri in traffic.uris("download") if uri.startswith(f"gs://{gcs_bucket}/staging/")]
    assert staging_area(config).cache.stats.hits > 0

    storage = storage_for(pushed.uri)
    root = pushed.uri.rstrip("/")
    published = {info.uri[len(root) + 1 :]: info for info in storage.list(root)}
    manifest = read_manifest(storage.read_bytes(f"{root}/{MANIFEST_PATH}"))
    assert {f.path for f in manifest.files} | {MANIFEST_PATH} == set(published)
    for entry in manifest.files:
        assert (published[entry.path].size, published[entry.path].crc32c) == (entry.size, entry.crc32c), entry.path
    assert "assets.extra/tf_serving_warmup_requests" in published  # warmup's output went back via staging

    assert list(storage.list(f"gs://{gcs_bucket}/staging")) == []  # nothing staged is left once published


def test_a_worker_without_the_export_downloads_it_once_then_reads_its_cache(
    all_on_gcs, gcs_bucket: str, traffic: Traffic, tmp_path: Path
) -> None:
    from components.pipeline.stages import discover_stage, evaluate_stage, export_stage, warmup_stage

    options = RunOptions(checkpoint=STEP, dry_run=True)
    (checkpoint,) = discover_stage(all_on_gcs, options)
    exported = export_stage(all_on_gcs, "all_modes", evaluate_stage(all_on_gcs, checkpoint), options)

    other = dataclasses.replace(all_on_gcs, scratch_dir=str(tmp_path / "other-worker"))
    before = len(traffic.uris("download"))
    warmup_stage(other, exported)
    first = [uri for uri in traffic.uris("download")[before:] if uri.startswith(exported.uri)]
    staged = {info.uri for info in storage_for(exported.uri).list(exported.uri)}
    assert first and set(first) <= staged and len(first) == len(set(first))  # each object once

    before = len(traffic.uris("download"))
    warmup_stage(other, exported)
    assert [uri for uri in traffic.uris("download")[before:] if uri.startswith(exported.uri)] == []
    staged_record = json.loads(storage_for(exported.uri).read_bytes(f"gs://{gcs_bucket}/staging/all_modes/.exportflow/{STEP}.staged.json"))
    assert {f["path"] for f in staged_record["files"]} >= {"saved_model.pb", "variables/variables.index"}


def test_by_reference_verified_at_graph_level_moves_no_variable_byte_at_all(
    trained_model: TrainedModel, gcs_bucket: str, make_config, tmp_path: Path, traffic: Traffic
) -> None:
    """With ``verify: graph`` the export reads only the checkpoint's index: its data shards go checkpoint →
    staging → destination as server-side copies, neither downloaded nor uploaded by the worker."""
    model_dir = upload_model(trained_model, f"gs://{gcs_bucket}/models/example")
    config = make_config(
        trained_model,
        f"gs://{gcs_bucket}/published",
        model_dir=model_dir,
        staging=f"gs://{gcs_bucket}/staging",
        scratch_dir=str(tmp_path / "scratch"),
        warmup={"source": "none"},
        strategies=[{"name": "all_modes", "kind": "all_modes", "params": {"by_reference": True, "verify": "graph"}}],
    )
    from components.pipeline.stages import (
        discover_stage,
        evaluate_stage,
        export_stage,
        publish_stage,
        warmup_stage,
    )

    (checkpoint,) = discover_stage(config, RunOptions(checkpoint=STEP))
    evaluation = evaluate_stage(config, checkpoint)
    before = len(traffic.calls)  # discovery and evaluation read the checkpoint; export on counts
    exported = export_stage(config, "all_modes", evaluation, RunOptions())
    pushed = publish_stage(config, warmup_stage(config, exported), RunOptions())

    moved = traffic.calls[before:]
    data = [(verb, uri) for verb, uri, _ in moved if verb in ("upload", "download") and ".data-" in uri]
    assert data == [] and exported.variables == "server_copy"
    assert [uri for verb, uri, _ in moved if verb == "download"] == [f"{checkpoint.pinned_uri}.index"]
    storage = storage_for(pushed.uri)
    root = pushed.uri.rstrip("/")
    manifest = read_manifest(storage.read_bytes(f"{root}/{MANIFEST_PATH}"))
    listed = {info.uri[len(root) + 1 :]: info for info in storage.list(root)}
    shards = [f for f in manifest.files if f.path.startswith("variables/variables.data-")]
    assert shards and all((listed[f.path].size, listed[f.path].crc32c) == (f.size, f.crc32c) for f in shards)
    checkpoint_data = {info.crc32c for info in storage.list(model_dir) if f"model.ckpt-{STEP}.data-" in info.uri}
    assert {f.crc32c for f in shards} <= checkpoint_data  # the published shards are the checkpoint's bytes


def staged_export(config):
    from components.pipeline.stages import discover_stage, evaluate_stage, export_stage

    options = RunOptions(checkpoint=STEP, dry_run=True)
    (checkpoint,) = discover_stage(config, options)
    evaluation = evaluate_stage(config, checkpoint)
    return evaluation, export_stage(config, "all_modes", evaluation, options)


def test_a_rerun_finds_the_staged_version_and_moves_nothing(all_on_gcs, traffic: Traffic) -> None:
    from components.pipeline.stages import export_stage

    evaluation, first = staged_export(all_on_gcs)
    before = len(traffic.calls)
    again = export_stage(all_on_gcs, "all_modes", evaluation, RunOptions(checkpoint=STEP))
    assert again.already_exported and again.uri == first.uri and again.signatures == first.signatures
    assert traffic.calls[before:] == []


def test_publishing_a_staged_export_that_is_gone_says_so_and_writes_nothing(all_on_gcs, gcs_bucket: str) -> None:
    from components.pipeline.stages import publish_stage
    from components.publish.errors import ExportIncomplete

    _, exported = staged_export(all_on_gcs)
    storage = storage_for(exported.uri)
    storage.delete_prefix(exported.uri)
    with pytest.raises(ExportIncomplete, match=r"staged export gs://.*/staging/all_modes/300 is gone .* rerun its export"):
        publish_stage(all_on_gcs, exported, RunOptions())
    assert list(storage.list(f"gs://{gcs_bucket}/published/example")) == []


def test_a_version_another_host_is_staging_is_left_alone_and_the_export_retries(all_on_gcs, gcs_bucket: str) -> None:
    """A live lease of another host (a pid that exists here means nothing there): retryable, nothing touched."""
    import os
    import time

    from components.export.errors import StagingFailed
    from components.pipeline.stages import discover_stage, evaluate_stage, export_stage

    options = RunOptions(checkpoint=STEP)
    (checkpoint,) = discover_stage(all_on_gcs, options)
    evaluation = evaluate_stage(all_on_gcs, checkpoint)
    area = staging_area(all_on_gcs)
    theirs = f"gs://{gcs_bucket}/staging/all_modes/{STEP}/saved_model.pb"
    area.storage.write_bytes(theirs, b"being written on the other host")
    lease = {"owner": f"other-host:{os.getpid()}:0123456789ab", "host": "other-host", "pid": os.getpid(),
             "purpose": "stage", "renewed_at": time.time(), "expires_at": time.time() + 600}
    area.storage.write_bytes(area.lock_uri("all_modes", str(STEP)), json.dumps(lease).encode())

    with pytest.raises(StagingFailed, match="is busy: .*stage in progress by other-host") as caught:
        export_stage(all_on_gcs, "all_modes", evaluation, options)
    assert caught.value.retryable
    assert area.storage.read_bytes(theirs) == b"being written on the other host"
    assert area.read_staged("all_modes", str(STEP)) is None


def test_staging_in_a_bucket_publishing_to_local_disk_goes_through_the_cache_once(
    trained_model: TrainedModel, gcs_bucket: str, make_config, tmp_path: Path, traffic: Traffic
) -> None:
    """Mixed stores: publish fetches the staged export into a local view (cache hits on the exporting
    worker), publishes it as a local export, and staging is empty afterwards."""
    config = make_config(
        trained_model,
        tmp_path / "published",
        staging=f"gs://{gcs_bucket}/staging",
        scratch_dir=str(tmp_path / "scratch"),
        strategies=[{"name": "all_modes", "kind": "all_modes", "params": {"by_reference": True}}],
    )
    report = run_pipeline(config, RunOptions(checkpoint=STEP))
    (pushed,) = report.published
    assert report.exports[0].uri == f"gs://{gcs_bucket}/staging/all_modes/{STEP}"
    assert pushed.uri == str(tmp_path / "published" / "example" / str(STEP))
    assert not [uri for uri in traffic.uris("download") if "/staging/" in uri]  # the exporting worker's cache
    manifest = read_manifest(Path(pushed.uri, MANIFEST_PATH).read_bytes())
    for entry in manifest.files:
        assert Path(pushed.uri, entry.path).stat().st_size == entry.size, entry.path
    assert list(storage_for(f"gs://{gcs_bucket}/staging").list(f"gs://{gcs_bucket}/staging")) == []
