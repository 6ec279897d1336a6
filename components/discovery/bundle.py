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


# --- LevelDB table format ---------------------------------------------------------------------------


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise BundleIndexError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise BundleIndexError("varint longer than 64 bits")


def _block_handle(buf: bytes, pos: int) -> tuple[tuple[int, int], int]:
    offset, pos = _varint(buf, pos)
    size, pos = _varint(buf, pos)
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
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        value_len, pos = _varint(block, pos)
        if shared > len(key) or pos + unshared + value_len > limit:
            raise BundleIndexError("malformed block entry")
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        entries.append((key, block[pos : pos + value_len]))
        pos += value_len
    return entries


# --- the two protos, decoded by field number (tensorflow/core/protobuf/tensor_bundle.proto) ---------


def _fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = int.from_bytes(buf[pos : pos + 8], "little"), pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = int.from_bytes(buf[pos : pos + 4], "little"), pos + 4
        else:
            raise BundleIndexError(f"unsupported protobuf wire type {wire}")
        if pos > len(buf):
            raise BundleIndexError("truncated protobuf field")
        out.append((number, value))
    return out


def _int64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _header(value: bytes) -> tuple[int]:
    num_shards = 0
    for number, field in _fields(value):
        if number == 1 and isinstance(field, int):
            num_shards = _int64(field)
    return (num_shards,)


def _shape(value: bytes) -> tuple[int, ...]:
    dims = []
    for number, field in _fields(value):
        if number == 2 and isinstance(field, bytes):  # TensorShapeProto.dim
            size = 0
            for dim_number, dim_field in _fields(field):
                if dim_number == 1 and isinstance(dim_field, int):
                    size = _int64(dim_field)
            dims.append(size)
    return tuple(dims)


def _entry(key: bytes, value: bytes) -> TensorEntry:
    dtype = shard_id = offset = size = 0
    shape: tuple[int, ...] = ()
    sliced = False
    for number, field in _fields(value):
        if number == 1 and isinstance(field, int):
            dtype = field
        elif number == 2 and isinstance(field, bytes):
            shape = _shape(field)
        elif number == 3 and isinstance(field, int):
            shard_id = _int64(field)
        elif number == 4 and isinstance(field, int):
            offset = _int64(field)
        elif number == 5 and isinstance(field, int):
            size = _int64(field)
        elif number == 7:
            sliced = True
    if offset < 0 or size < 0:
        raise BundleIndexError(f"tensor {key!r} has a negative offset or size")
    return TensorEntry(
        key=key, dtype=dtype, shape=shape, shard_id=shard_id, offset=offset, size=size, sliced=sliced
    )
