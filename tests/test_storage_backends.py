"""The storage layer beyond the smoke tests: preconditions, verified uploads, links, options, credentials,
retry policy and error mapping — on local disk and on the real GCS emulator.

The emulator does not enforce generation preconditions, so precondition behaviour is only proven on
local disk here; on GCS the tests check that preconditions are *sent* where the code relies on them
(real GCS enforces them).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from components.storage import (
    BucketNotFound,
    InvalidStorageOptions,
    InvalidURI,
    ObjectNotFound,
    PreconditionFailed,
    StorageError,
    StorageOptions,
    UnsupportedScheme,
    UploadChecksumMismatch,
    crc32c_of_bytes,
    crc32c_of_file,
    storage_for,
)
from components.storage.gcs import GCSStorage, split_gcs_uri
from components.storage.local import LocalStorage
from tests.support.faultproxy import FaultProxy, Respond
from tests.support.publishing import FsyncRecorder

FAKE_SECRET = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC-not-a-real-key-0123456789"


@pytest.fixture(params=["local", "gcs"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "local":
        return str(tmp_path / "store")
    return f"gs://{request.getfixturevalue('gcs_bucket')}/root"


def blob_file(tmp_path: Path, size: int, name: str = "payload.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path


def test_upload_reports_size_and_crc32c_and_progress(root: str, tmp_path: Path) -> None:
    storage = storage_for(root)
    source = blob_file(tmp_path, 9 * 1024 * 1024 + 17)  # above 8 MiB: resumable on GCS
    seen: list[int] = []
    info = storage.upload_file(
        str(source), storage.join(root, "a", "big.bin"), if_generation_match=0,
        crc32c=crc32c_of_file(str(source)), progress=seen.append,
    )
    assert info.size == source.stat().st_size
    assert info.crc32c == crc32c_of_file(str(source))
    assert sum(seen) == info.size and all(n > 0 for n in seen)
    assert storage.checksum(storage.join(root, "a", "big.bin")) == info.crc32c


@pytest.mark.parametrize("size", [1000, 9 * 1024 * 1024])  # multipart and resumable on GCS
def test_upload_with_the_wrong_crc32c_stores_nothing(root: str, tmp_path: Path, size: int) -> None:
    storage = storage_for(root)
    source = blob_file(tmp_path, size)
    target = storage.join(root, "wrong.bin")
    with pytest.raises(UploadChecksumMismatch):
        storage.upload_file(str(source), target, if_generation_match=0, crc32c=crc32c_of_bytes(b"other bytes"))
    assert storage.stat(target) is None
    assert [i for i in storage.list(root)] == []  # no temp file either


def test_copy_and_conditional_delete(root: str) -> None:
    storage = storage_for(root)
    src = storage.join(root, "src.bin")
    written = storage.write_bytes(src, b"x" * 5000, if_generation_match=0)
    copied = storage.copy(src, storage.join(root, "dst", "copy.bin"), if_generation_match=0)
    assert copied.size == 5000
    assert storage.checksum(copied.uri) == written.crc32c
    storage.delete(copied.uri, if_generation_match=copied.generation)
    assert storage.stat(copied.uri) is None
    storage.delete(copied.uri)  # absent is fine


def test_local_create_if_absent_leaves_no_lock_or_temp_files(tmp_path: Path) -> None:
    storage = LocalStorage()
    target = str(tmp_path / "v" / "saved_model.pb")
    storage.write_bytes(target, b"graph", if_generation_match=0)
    with pytest.raises(PreconditionFailed):
        storage.write_bytes(target, b"other", if_generation_match=0)
    with pytest.raises(PreconditionFailed):
        storage.copy(target, target, if_generation_match=0)
    assert os.listdir(tmp_path / "v") == ["saved_model.pb"]
    assert storage.read_bytes(target) == b"graph"


def test_local_compare_and_swap_and_conditional_delete_reject_a_stale_generation(tmp_path: Path) -> None:
    storage = LocalStorage()
    target = str(tmp_path / "lease.json")
    first = storage.write_bytes(target, b"1", if_generation_match=0)
    second = storage.write_bytes(target, b"2", if_generation_match=first.generation)
    assert second.generation != first.generation
    with pytest.raises(PreconditionFailed):
        storage.write_bytes(target, b"3", if_generation_match=first.generation)
    with pytest.raises(PreconditionFailed):
        storage.delete(target, if_generation_match=first.generation)
    assert storage.read_bytes(target) == b"2"
    storage.delete(target, if_generation_match=second.generation)
    assert not os.path.exists(target) and os.listdir(tmp_path) == []


def test_local_upload_is_flushed_to_disk_before_its_name_appears(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = blob_file(tmp_path, 300_000)
    target = str(tmp_path / "out" / "variables.data-00000-of-00001")
    flushes = FsyncRecorder(monkeypatch, target)
    LocalStorage().upload_file(str(source), target, crc32c=crc32c_of_file(str(source)))
    temp_flushes = [(path, seen) for path, seen in flushes.calls if os.path.basename(path).startswith(".tmp-")]
    assert temp_flushes and all(not seen for _, seen in temp_flushes)  # flushed as the temp file, before the rename
    assert os.path.getsize(target) == 300_000


def test_local_durable_false_skips_every_flush_of_uploads_but_not_of_small_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = storage_for(str(tmp_path), StorageOptions(durable=False))
    assert isinstance(storage, LocalStorage) and not storage.durable
    source = blob_file(tmp_path, 300_000)
    target = str(tmp_path / "out" / "data.bin")
    flushes = FsyncRecorder(monkeypatch, target)
    storage.upload_file(str(source), target)
    storage.sync([target])
    assert flushes.calls == []
    storage.write_bytes(str(tmp_path / "out" / "marker.json"), b"{}")  # bookkeeping stays crash-safe
    assert len(flushes.calls) == 1 and "marker.json" in flushes.paths()[0]
    assert Path(target).read_bytes() == source.read_bytes()


def test_local_copy_is_a_hard_link_on_one_filesystem(tmp_path: Path) -> None:
    storage = LocalStorage()
    source = blob_file(tmp_path, 100_000)
    info = storage.copy(str(source), str(tmp_path / "out" / "linked.bin"), if_generation_match=0)
    assert info.crc32c is None  # linked: the bytes are the source's, nothing was read
    assert os.stat(source).st_ino == os.stat(info.uri).st_ino


def test_gcs_upload_sends_the_expected_crc32c_to_the_server(gcs_bucket: str, tmp_path: Path) -> None:
    # The emulator checks a crc32c given in the object metadata, as GCS does: proof that it was sent.
    storage = storage_for(f"gs://{gcs_bucket}/x")
    source = blob_file(tmp_path, 4000)
    target = f"gs://{gcs_bucket}/x/obj.bin"
    with pytest.raises(UploadChecksumMismatch, match="refused the content"):
        storage.upload_file(str(source), target, if_generation_match=0, crc32c=crc32c_of_bytes(b"nope"))
    assert storage.stat(target) is None


def test_gcs_missing_bucket_is_bucket_not_found(gcs: object, tmp_path: Path) -> None:
    storage = storage_for("gs://no-such-bucket/x")
    with pytest.raises(BucketNotFound, match="'no-such-bucket' does not exist"):
        storage.write_bytes("gs://no-such-bucket/x/a", b"1", if_generation_match=0)
    with pytest.raises(BucketNotFound):
        list(storage.list("gs://no-such-bucket/x"))
    assert storage.stat("gs://no-such-bucket/x/a") is None


@pytest.mark.parametrize(
    "uri", ["gs://", "gs:///models", "gs://UPPER/models", "gs://a/models", "gs://bucket/a//b", "gs://bucket/a/../b"]
)
def test_malformed_gcs_uris_are_rejected_before_any_call(uri: str) -> None:
    with pytest.raises(InvalidURI):
        split_gcs_uri(uri)


def test_unknown_scheme_names_the_known_ones() -> None:
    with pytest.raises(UnsupportedScheme, match="known schemes"):
        storage_for("s4://bucket/models")


@pytest.mark.parametrize(
    "kwargs", [{"chunk_size": 1000}, {"chunk_size": 0}, {"timeout": 0}, {"retry_deadline": -1}, {"pool_size": 0}]
)
def test_storage_options_are_validated(kwargs: dict) -> None:
    with pytest.raises(InvalidStorageOptions):
        StorageOptions(**kwargs)


def test_back_ends_are_cached_per_options(gcs: object) -> None:
    fast = StorageOptions(timeout=5)
    assert storage_for("gs://b/x", fast) is storage_for("gs://c/y", fast)
    assert storage_for("gs://b/x", fast) is not storage_for("gs://b/x")
    assert storage_for("gs://b/x", fast).options.timeout == 5


def test_gcs_uses_the_sdk_retry_policy_with_our_deadline_and_only_for_safe_writes() -> None:
    from google.api_core import exceptions as gexc
    from google.cloud.storage.retry import DEFAULT_RETRY

    storage = GCSStorage(options=StorageOptions(retry_deadline=7, retry_initial_delay=0.25))
    retry = storage.retry
    assert retry._predicate is DEFAULT_RETRY._predicate  # the SDK's table of transient errors
    assert retry._timeout == 7 and retry._initial == 0.25
    assert retry._predicate(gexc.ServiceUnavailable("x")) and retry._predicate(gexc.TooManyRequests("x"))
    assert not retry._predicate(gexc.Forbidden("x")) and not retry._predicate(gexc.Unauthorized("x"))
    assert storage._write_retry(0) is not None and storage._write_retry(123) is not None
    assert storage._write_retry(None) is None  # an unconditional write is not safe to repeat


def _through_proxy(gcs, monkeypatch: pytest.MonkeyPatch, plan) -> tuple[FaultProxy, GCSStorage]:
    host, port = gcs.host.split(":")
    proxy = FaultProxy((host, int(port)), plan).__enter__()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://{proxy.address}")
    return proxy, GCSStorage(options=StorageOptions(retry_deadline=20, retry_initial_delay=0.05, timeout=5))


def test_transient_503s_are_retried_until_the_write_lands(gcs, gcs_bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    proxy, storage = _through_proxy(gcs, monkeypatch, lambda n, head: Respond(503) if n <= 2 else None)
    try:
        info = storage.write_bytes(f"gs://{gcs_bucket}/r/a.txt", b"hello", if_generation_match=0)
    finally:
        proxy.stop()
    assert len(proxy.faults_of(Respond)) == 2
    assert info.crc32c == crc32c_of_bytes(b"hello")


@pytest.mark.parametrize("status", [401, 403])
def test_auth_errors_are_never_retried(gcs, gcs_bucket: str, monkeypatch: pytest.MonkeyPatch, status: int) -> None:
    proxy, storage = _through_proxy(gcs, monkeypatch, lambda n, head: Respond(status))
    try:
        with pytest.raises(StorageError, match="refused access") as caught:
            storage.write_bytes(f"gs://{gcs_bucket}/r/a.txt", b"hello", if_generation_match=0)
    finally:
        proxy.stop()
    assert not getattr(caught.value, "retryable", False)
    uploads = [a for a in proxy.applied if a.request_line.startswith("POST /upload/")]
    assert len(uploads) == 1  # the write was tried once: no retry


def test_missing_service_account_key_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    storage = GCSStorage(options=StorageOptions(credentials_path=str(tmp_path / "missing.json")))
    with pytest.raises(StorageError, match="missing.json does not exist"):
        storage.stat("gs://bucket/a")


@pytest.mark.parametrize(
    "content",
    [
        "{not json " + FAKE_SECRET,
        json.dumps({"type": "service_account", "private_key": FAKE_SECRET}),  # fields missing
        json.dumps({
            "type": "service_account", "private_key": f"-----BEGIN PRIVATE KEY-----\n{FAKE_SECRET}\n-----END PRIVATE KEY-----\n",
            "client_email": "x@y.iam.gserviceaccount.com", "token_uri": "https://oauth2.googleapis.com/token",
            "private_key_id": "abc", "project_id": "p",
        }),  # complete but the key does not parse
    ],
)
def test_a_bad_key_file_never_shows_the_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, content: str
) -> None:
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    key = tmp_path / "key.json"
    key.write_text(content)
    storage = GCSStorage(options=StorageOptions(credentials_path=str(key)))
    caplog.set_level(logging.DEBUG)
    with pytest.raises(StorageError, match="not a valid service-account key file") as caught:
        storage.stat("gs://bucket/a")
    shown = [str(caught.value), repr(caught.value), repr(storage), caplog.text]
    cause = caught.value.__cause__
    while cause is not None:
        shown.append(str(cause))
        cause = cause.__cause__
    assert not any(FAKE_SECRET in text for text in shown)
    assert str(key) in str(caught.value)


def test_no_application_default_credentials_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_GCE_CHECK", "True")  # do not probe a metadata server
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    with pytest.raises(StorageError, match="application-default login"):
        GCSStorage().stat("gs://bucket/a")


def test_local_read_of_a_missing_file_is_object_not_found(tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFound):
        LocalStorage().upload_file(str(tmp_path / "missing"), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_local_sync_flushes_files_and_reports_a_vanished_one(tmp_path: Path) -> None:
    storage = LocalStorage()
    written = storage.upload_file(str(blob_file(tmp_path, 1000)), str(tmp_path / "out" / "a.bin"), if_generation_match=0)
    storage.sync([written.uri])
    with pytest.raises(ObjectNotFound):
        storage.sync([str(tmp_path / "out" / "gone.bin")])


def test_file_uris_work_as_local_destinations(tmp_path: Path) -> None:
    from components.publish.executor import publish
    from tests.support.publishing import make_config, make_export, params_for

    pushed = publish(params_for(make_config(f"file://{tmp_path}/published", tmp_path)), make_export(tmp_path / "staging"))
    assert pushed.uri == str(tmp_path / "published" / "example" / "300")
    assert (tmp_path / "published" / "example" / "300" / "saved_model.pb").exists()
