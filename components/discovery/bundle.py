"""Read a TensorFlow checkpoint's ``.index`` file without TensorFlow.

A V2 checkpoint (a "tensor bundle") is a ``.index`` file plus ``.data-NNNNN-of-MMMMM`` shards. The index
is a LevelDB-format table (``tensorflow/core/lib/io/table``, written without compression): a footer
with a magic number, an index block pointing at data blocks, and in the data blocks one entry per
tensor — key ``""`` holds a ``BundleHeaderProto`` (number of shards), every other key a
``BundleEntryProto`` (dtype, shape, shard, byte offset and size in that shard). Each block carries a
masked CRC32C, so a damaged index is detected here, and the offsets tell how many bytes every shard
must have, so a truncated shard is detected from one listing without reading any shard.

Partitioned variables have a full-tensor entry (name, full shape, no bytes) plus one entry per slice
under a binary key starting with ``\\x00``; slices count for the shard sizes, not as variables.
"""

from __future__ import annotations

import dataclasses
import struct

from components.protowire import WireFormatError, as_int64, iter_fields, read_varint

_MAGIC = 0xDB4775248B80FB57
_FOOTER_SIZE = 48  # two block handles padded to 40 bytes, then the 8-byte magic
_TRAILER_SIZE = 5  # block type (1 byte) + masked crc32c (4 bytes)
_MASK_DELTA = 0xA282EAD8


class BundleIndexError(ValueError):
    """The bytes are not a valid tensor-bundle index; the message says what is wrong."""


@dataclasses.dataclass(frozen=True)
class TensorEntry:
    """One tensor (or one slice of a partitioned tensor) in the bundle."""

    key: bytes
    dtype: int  # a tensorflow.DataType enum value
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    sliced: bool = False  # a partitioned variable's full entry: its bytes live in its slices

    @property
    def is_variable(self) -> bool:
        return bool(self.key) and not self.key.startswith(b"\x00")

    @property
    def name(self) -> str:
        return self.key.decode("utf-8", "replace")


@dataclasses.dataclass(frozen=True)
class BundleIndex:
    """What a ``.index`` file says: shard count and every tensor's place."""

    num_shards: int
    entries: tuple[TensorEntry, ...]

    def variables(self) -> dict[str, TensorEntry]:
        """Saved variables by name (partitioned ones by their full name and shape)."""
        return {e.name: e for e in self.entries if e.is_variable}

    def shard_extents(self) -> dict[int, int]:
        """The number of bytes each shard must hold at least: the end of its last tensor."""
        extents: dict[int, int] = {}
        for entry in self.entries:
            if entry.size:
                end = entry.offset + entry.size
                extents[entry.shard_id] = max(extents.get(entry.shard_id, 0), end)
        return extents


def parse_bundle_index(data: bytes) -> BundleIndex:
    """Parse and checksum-verify a tensor-bundle ``.index``; ``BundleIndexError`` says what is wrong."""
    try:
        return _parse(data)
    except WireFormatError as exc:
        raise BundleIndexError(f"malformed checkpoint index: {exc}") from exc


def _parse(data: bytes) -> BundleIndex:
    if len(data) < _FOOTER_SIZE:
        raise BundleIndexError(
            f"{len(data)} bytes is too short for a checkpoint index (footer is {_FOOTER_SIZE})"
        )
    footer = data[-_FOOTER_SIZE:]
    (magic,) = struct.unpack("<Q", footer[-8:])
    if magic != _MAGIC:
        raise BundleIndexError("bad magic number: not a TensorFlow checkpoint index")
    _metaindex, pos = _block_handle(footer, 0)
    index_handle, _ = _block_handle(footer, pos)
    header: tuple[int, ...] | None = None
    entries: list[TensorEntry] = []
    for _key, handle_bytes in _block_entries(_read_block(data, index_handle)):
        block_handle, _ = _block_handle(handle_bytes, 0)
        for key, value in _block_entries(_read_block(data, block_handle)):
            if key == b"":
                header = _header(value)
            else:
                entries.append(_entry(key, value))
    if header is None:
        raise BundleIndexError("the index has no bundle header entry")
    (num_shards,) = header
    if num_shards <= 0:
        raise BundleIndexError(f"the header says {num_shards} shards")
    for entry in entries:
        if entry.size and not 0 <= entry.shard_id < num_shards:
            raise BundleIndexError(f"tensor {entry.name!r} is in shard {entry.shard_id} of {num_shards}")
    return BundleIndex(num_shards=num_shards, entries=tuple(entries))


# --- LevelDB table format (its varints are protobuf's) ------------------------------------------------


def _block_handle(buf: bytes, pos: int) -> tuple[tuple[int, int], int]:
    offset, pos = read_varint(buf, pos)
    size, pos = read_varint(buf, pos)
    return (offset, size), pos


def _read_block(data: bytes, handle: tuple[int, int]) -> bytes:
    import google_crc32c

    offset, size = handle
    end = offset + size + _TRAILER_SIZE
    if end > len(data) - _FOOTER_SIZE:
        raise BundleIndexError(f"block at {offset} (+{size}) runs past the end of the index")
    contents = data[offset : offset + size]
    block_type = data[offset + size]
    (stored,) = struct.unpack("<I", data[offset + size + 1 : end])
    if _unmask(stored) != google_crc32c.value(contents + bytes([block_type])):
        raise BundleIndexError(f"checksum mismatch in the block at byte {offset}: the index is damaged")
    if block_type != 0:
        raise BundleIndexError(
            f"block at byte {offset} is compressed (type {block_type}); TensorFlow never writes that"
        )
    return contents


def _unmask(masked: int) -> int:
    rot = (masked - _MASK_DELTA) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


def _block_entries(block: bytes) -> list[tuple[bytes, bytes]]:
    if len(block) < 4:
        raise BundleIndexError("block too short")
    (restarts,) = struct.unpack("<I", block[-4:])
    limit = len(block) - 4 * (restarts + 1)
    if limit < 0:
        raise BundleIndexError("block restart array larger than the block")
    entries = []
    pos, key = 0, b""
    while pos < limit:
        shared, pos = read_varint(block, pos)
        unshared, pos = read_varint(block, pos)
        value_len, pos = read_varint(block, pos)
        if shared > len(key) or pos + unshared + value_len > limit:
            raise BundleIndexError("malformed block entry")
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        entries.append((key, block[pos : pos + value_len]))
        pos += value_len
    return entries


# --- the two protos, decoded by field number (tensorflow/core/protobuf/tensor_bundle.proto) ---------


def _header(value: bytes) -> tuple[int]:
    num_shards = 0
    for number, field in iter_fields(value):
        if number == 1 and isinstance(field, int):
            num_shards = as_int64(field)
    return (num_shards,)


def _shape(value: bytes) -> tuple[int, ...]:
    dims = []
    for number, field in iter_fields(value):
        if number == 2 and isinstance(field, bytes):  # TensorShapeProto.dim
            size = 0
            for dim_number, dim_field in iter_fields(field):
                if dim_number == 1 and isinstance(dim_field, int):
                    size = as_int64(dim_field)
            dims.append(size)
    return tuple(dims)


def _entry(key: bytes, value: bytes) -> TensorEntry:
    dtype = shard_id = offset = size = 0
    shape: tuple[int, ...] = ()
    sliced = False
    for number, field in iter_fields(value):
        if number == 1 and isinstance(field, int):
            dtype = field
        elif number == 2 and isinstance(field, bytes):
            shape = _shape(field)
        elif number == 3 and isinstance(field, int):
            shard_id = as_int64(field)
        elif number == 4 and isinstance(field, int):
            offset = as_int64(field)
        elif number == 5 and isinstance(field, int):
            size = as_int64(field)
        elif number == 7:
            sliced = True
    if offset < 0 or size < 0:
        raise BundleIndexError(f"tensor {key!r} has a negative offset or size")
    return TensorEntry(
        key=key, dtype=dtype, shape=shape, shard_id=shard_id, offset=offset, size=size, sliced=sliced
    )
