"""Checkpoints that are one file each, named by a pattern: what Keras 3's ``ModelCheckpoint`` writes.

The pattern (``components.config.checkpoint_pattern``) gives each file's step. No
TensorFlow or Keras here: whether a file is whole is read from its own bytes, without opening it as a
model. ``ModelCheckpoint`` writes the file in place, so a file still being written (or cut short by a
killed trainer) exists under its final name. On local disk a file counts as complete only when

* ``.h5`` (``.weights.h5``): the HDF5 superblock is there and its end-of-file address equals the file's
  size (HDF5 writes the superblock last when it closes the file);
* ``.keras``: the zip's end-of-central-directory record ends the file (zip writes it last).

On an object store an object appears whole or not at all, so any non-empty object is complete.
"""

from __future__ import annotations

import dataclasses
import struct

from components.config.checkpoint_pattern import FilePattern
from components.storage import ObjectInfo, scheme_of

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


def group_single_files(pattern: FilePattern, files: list[ObjectInfo]) -> dict[str, SingleFileCheckpoint]:
    """The listing's files that match ``pattern``, by name, each judged complete or not."""
    found = {}
    for info in files:
        name = info.uri.rstrip("/").rpartition("/")[2]
        step = pattern.step_of(name)
        if step is not None:
            found[name] = SingleFileCheckpoint(name, step, info.size, _problem(info))
    return found


def _problem(info: ObjectInfo) -> str:
    if info.size == 0:
        return "empty"
    if scheme_of(info.uri) != "file":
        return ""  # an object store shows an object only once it is whole
    path = info.uri.removeprefix("file://")
    try:
        with open(path, "rb") as handle:
            if path.endswith(".keras"):
                return _zip_problem(handle, info.size)
            return _hdf5_problem(handle.read(64), info.size)
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"


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


def _zip_problem(handle, size: int) -> str:
    if size < ZIP_END_SIZE:
        return "shorter than a zip file: still being written"
    handle.seek(size - ZIP_END_SIZE)
    if handle.read(4) != ZIP_END:
        return "no zip end record at its end: still being written, or truncated"
    return ""
