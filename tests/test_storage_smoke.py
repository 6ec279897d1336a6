"""The storage layer against local disk and the real GCS emulator: the verbs the stages rely on."""

from __future__ import annotations

import pytest

from components.storage import ObjectNotFound, PreconditionFailed, crc32c_of_bytes, storage_for


@pytest.fixture(params=["local", "gcs"])
def root(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "local":
        return str(tmp_path / "store")
    bucket = request.getfixturevalue("gcs_bucket")
    return f"gs://{bucket}/root"


def test_write_read_list_and_checksum(root: str) -> None:
    storage = storage_for(root)
    storage.write_bytes(storage.join(root, "a", "x.bin"), b"hello")
    storage.write_bytes(storage.join(root, "b.bin"), b"world!")
    assert storage.read_bytes(storage.join(root, "a", "x.bin")) == b"hello"
    assert sorted(i.size for i in storage.list(root)) == [5, 6]
    assert storage.list_names(root) == ["a", "b.bin"]
    assert storage.checksum(storage.join(root, "b.bin")) == crc32c_of_bytes(b"world!")
    assert storage.stat(storage.join(root, "missing")) is None
    with pytest.raises(ObjectNotFound):
        storage.read_bytes(storage.join(root, "missing"))


def test_create_if_absent_and_compare_and_swap_locally(tmp_path) -> None:
    # Local disk enforces generations; the GCS emulator does not (real GCS does), so only local is proven here.
    root = str(tmp_path / "store")
    storage = storage_for(root)
    uri = storage.join(root, "ledger.json")
    storage.write_bytes(uri, b"v1", if_generation_match=0)
    with pytest.raises(PreconditionFailed):
        storage.write_bytes(uri, b"again", if_generation_match=0)
    data, generation = storage.read_versioned(uri)
    assert data == b"v1"  # the refused write changed nothing
    storage.write_bytes(uri, b"v2", if_generation_match=generation)
    with pytest.raises(PreconditionFailed):
        storage.write_bytes(uri, b"stale", if_generation_match=generation)
    assert storage.read_bytes(uri) == b"v2"


def test_server_side_copy_and_delete_prefix(root: str) -> None:
    storage = storage_for(root)
    src, dst = storage.join(root, "src.bin"), storage.join(root, "copy", "dst.bin")
    storage.write_bytes(src, b"payload" * 100)
    storage.copy(src, dst)
    assert storage.checksum(dst) == storage.checksum(src)
    assert storage.delete_prefix(storage.join(root, "copy")) == 1
    assert storage.stat(dst) is None
