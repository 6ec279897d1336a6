"""Checkpoints that are one file each, named by a pattern: what Keras 3's ``ModelCheckpoint`` writes.

The pattern (``components.config.checkpoint_pattern``) gives each file's step. No
TensorFlow or Keras here: whether a file is whole is read from its own bytes, without opening it as a
model. ``ModelCheckpoint`` writes the file in place, so a file still being written (or cut short by a
killed trainer) exists under its final name. A file counts as complete only when

* ``.h5`` (``.weights.h5``): the HDF5 superblock is there and its end-of-file address equals the file's
  size (HDF5 writes the superblock last when it closes the file);
* ``.keras``: the zip's end-of-central-directory record ends the file (zip writes it last).

The same holds on an object store. A GCS object is visible only once its upload is finalized, but that
says nothing of the bytes: a trainer that copies a file still being written (``gsutil cp`` of a local
checkpoint, a sync loop) finalizes a truncated object. So each object is judged too, by one ranged read
of its first 64 or last 22 bytes (``Storage.read_range``), never a download; and only the objects a run
could take are read (``judge``: steps already handled were judged when they were taken).
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable

from components.artifacts import CheckpointArtifact
from components.config.checkpoint_pattern import FilePattern
from components.storage import ObjectInfo, ObjectNotFound, Storage, StorageError

HDF5_HEAD = 64  # bytes that hold any superblock version's end-of-file address
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_END = b"PK\x05\x06"
ZIP_END_SIZE = 22  # the end-of-central-directory record without a comment (zipfile writes none)


@dataclasses.dataclass(frozen=True)
class SingleFileCheckpoint:
    """One checkpoint file: shaped like ``CheckpointFiles`` for discovery's choice and artifacts."""

    prefix: str  # the file name (the checkpoint's URI is <model_dir>/<prefix>)
    step: int
    size: int
    problem: str = ""  # why it is not complete ("" when it is)

    @property
    def complete(self) -> bool:
        return not self.problem

    def missing(self) -> list[str]:
        return [f"{self.prefix} ({self.problem})"] if self.problem else []

    def file_sizes(self) -> list[tuple[str, int]]:
        return [(self.prefix, self.size)]


def group_single_files(
    pattern: FilePattern,
    files: list[ObjectInfo],
    storage: Storage,
    judge: Callable[[int], bool] = lambda step: True,
) -> dict[str, SingleFileCheckpoint]:
    """The listing's files that match ``pattern``, by name, each judged complete or not (by its bytes
    when ``judge(step)``, else by its size alone)."""
    found = {}
    for info in files:
        name = info.uri.rstrip("/").rpartition("/")[2]
        step = pattern.step_of(name)
        if step is not None:
            problem = _problem(storage, info) if judge(step) else ("empty" if info.size == 0 else "")
            found[name] = SingleFileCheckpoint(name, step, info.size, problem)
    return found


def _problem(storage: Storage, info: ObjectInfo) -> str:
    if info.size == 0:
        return "empty"
    try:
        if info.uri.endswith(".keras"):
            if info.size < ZIP_END_SIZE:
                return "shorter than a zip file: still being written"
            return _zip_problem(storage.read_range(info.uri, info.size - ZIP_END_SIZE, ZIP_END_SIZE))
        return _hdf5_problem(storage.read_range(info.uri, 0, min(HDF5_HEAD, info.size)), info.size)
    except ObjectNotFound:
        return "gone since the listing (the trainer's retention removed it?)"
    except StorageError as exc:
        return f"unreadable: {exc}"


def _hdf5_problem(head: bytes, size: int) -> str:
    """Where the HDF5 superblock's end-of-file address disagrees with the size: still being written."""
    if not head.startswith(HDF5_SIGNATURE):
        return "no HDF5 superblock yet: still being written, or not an HDF5 file"
    version = head[8]
    try:
        if version in (0, 1):
            offsets = head[13]
            at = 24 + (4 if version == 1 else 0) + 2 * offsets
        else:
            offsets = head[9]
            at = 12 + 2 * offsets
        if offsets != 8:
            return ""  # 8-byte addresses are what h5py writes; others are not judged here
        (end,) = struct.unpack_from("<Q", head, at)
    except (IndexError, struct.error):
        return "HDF5 superblock cut short: still being written"
    if end != size:
        return f"HDF5 file is {size} bytes but its superblock says {end}: still being written, or truncated"
    return ""


def _zip_problem(tail: bytes) -> str:
    """Where the last bytes are not a zip end record: still being written, or truncated."""
    if not tail.startswith(ZIP_END):
        return "no zip end record at its end: still being written, or truncated"
    return ""


def is_single_file(checkpoint: CheckpointArtifact) -> bool:
    """Whether the checkpoint is one file named by its URI (a pattern's), not TensorFlow's index and shards."""
    name = checkpoint.uri.rstrip("/").rpartition("/")[2]
    return [entry.path for entry in checkpoint.files] == [name]


def single_file_objects(storage: Storage, checkpoint: CheckpointArtifact) -> list[ObjectInfo]:
    """The one object of a single-file checkpoint at its readable place (lease or original), or none."""
    info = storage.stat(checkpoint.readable_prefix)
    return [info] if info is not None else []
