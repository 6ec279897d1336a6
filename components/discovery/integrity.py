"""Check a checkpoint against its own index before anything reads its tensors.

Reads the ``.index`` (small: one entry per tensor) and stats each data shard: the index must parse and
pass its block checksums, name as many shards as the files do, and every shard must hold every byte
the index points into. That catches a damaged index, a missing shard and a truncated shard with
errors naming the file, instead of a TensorFlow ``DataLossError`` halfway through an evaluation.
Per-tensor CRC32Cs are verified by TensorFlow itself when it reads the tensors.
"""

from __future__ import annotations

from components.artifacts import CheckpointArtifact
from components.discovery.bundle import BundleIndex, BundleIndexError, parse_bundle_index
from components.discovery.checkpoints import shard_name
from components.discovery.errors import (
    CheckpointUnreadable,
    CheckpointVanished,
    CorruptCheckpoint,
    IncompleteCheckpoint,
)
from components.storage import ObjectNotFound, Storage, StorageError, storage_for


def verify_checkpoint(
    checkpoint: CheckpointArtifact, prefix: str | None = None, *, storage: Storage | None = None
) -> BundleIndex:
    """The parsed index of ``prefix`` (default: the checkpoint's readable prefix), or a ``CheckpointError``."""
    prefix = prefix or checkpoint.readable_prefix
    storage = storage or storage_for(prefix)
    name = checkpoint.label
    index_uri = f"{prefix}.index"

    def users(uri: str) -> str:
        """A file of the lease as the user knows it: the trainer's own file (the lease is a second name)."""
        return checkpoint.uri + uri[len(prefix) :] if uri.startswith(prefix) else uri

    try:
        data = storage.read_bytes(index_uri)
    except ObjectNotFound as exc:
        raise CheckpointVanished(f"{name}: its index {index_uri} is gone") from exc
    except StorageError as exc:
        raise CheckpointUnreadable(f"{name}: cannot read its index: {exc}") from exc
    try:
        index = parse_bundle_index(data)
    except BundleIndexError as exc:
        raise CorruptCheckpoint(f"{name}: the index {users(index_uri)} is damaged: {exc}") from exc
    listed_totals = {_total_of(f.path) for f in checkpoint.files if ".data-" in f.path}
    if listed_totals and listed_totals != {index.num_shards}:
        raise CorruptCheckpoint(
            f"{name}: its data files say {sorted(listed_totals)} shard(s) but the index says {index.num_shards}"
        )
    base = prefix.rstrip("/").rpartition("/")[2]
    folder = prefix[: len(prefix) - len(base)]
    extents = index.shard_extents()
    for shard in range(index.num_shards):
        shard_uri = folder + shard_name(base, shard, index.num_shards)
        try:
            info = storage.stat(shard_uri)
        except StorageError as exc:
            raise CheckpointUnreadable(f"{name}: cannot stat {users(shard_uri)}: {exc}") from exc
        if info is None:
            raise IncompleteCheckpoint(f"{name}: data shard {users(shard_uri)} is missing")
        needed = extents.get(shard, 0)
        if info.size < needed:
            raise CorruptCheckpoint(
                f"{name}: data shard {users(shard_uri)} has {info.size} bytes but the index needs {needed} "
                "(truncated, or still being copied)"
            )
    return index


def _total_of(path: str) -> int:
    return int(path.rsplit("-of-", 1)[1])
