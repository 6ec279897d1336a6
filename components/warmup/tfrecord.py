"""TFRecord framing, read record by record so a bad file is reported by record index, not byte offset.

Each record is ``uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)``
(little-endian), as TensorFlow's RecordWriter writes it. TF's own reader only says "corrupted record at
<offset>"; reading the frames here lets lint say which record, and whether the file is a TFRecord at all.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Iterable, Iterator
from typing import BinaryIO, Literal

_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")
_MASK_DELTA = 0xA282EAD8


def masked_crc(data: bytes) -> int:
    import google_crc32c

    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def encode(records: Iterable[bytes]) -> bytes:
    """The TFRecord file holding ``records``, in order."""
    parts = []
    for record in records:
        length = struct.pack("<Q", len(record))
        parts += [
            length,
            struct.pack("<I", masked_crc(length)),
            record,
            struct.pack("<I", masked_crc(record)),
        ]
    return b"".join(parts)


@dataclasses.dataclass(frozen=True)
class FrameError:
    """Why reading stopped before the end of the file."""

    record: int  # index of the record that could not be read
    offset: int  # its byte offset
    kind: Literal["not_tfrecord", "corrupted", "truncated"]
    detail: str


@dataclasses.dataclass(frozen=True)
class Scan:
    records: tuple[bytes, ...]
    error: FrameError | None = None


def iter_frames(handle: BinaryIO, limit: int | None = None) -> Iterator[bytes | FrameError]:
    """Records of an open binary file; a ``FrameError`` is yielded last when the file is damaged."""
    index = offset = 0
    while limit is None or index < limit:
        header = handle.read(_HEADER.size)
        if not header:
            return
        if len(header) < _HEADER.size:
            kind = "not_tfrecord" if index == 0 else "truncated"
            yield FrameError(
                index, offset, kind, f"{len(header)} bytes where a {_HEADER.size}-byte header starts"
            )
            return
        length, length_crc = _HEADER.unpack(header)
        if masked_crc(header[:8]) != length_crc:
            if index == 0:
                yield FrameError(index, offset, "not_tfrecord", f"the file starts with {header!r}")
            else:
                yield FrameError(index, offset, "corrupted", "the length's checksum does not match")
            return
        body = handle.read(length + _FOOTER.size)
        if len(body) < length + _FOOTER.size:
            yield FrameError(
                index,
                offset,
                "truncated",
                f"the header promises {length} bytes, the file ends after {len(body)}",
            )
            return
        data = body[:length]
        if masked_crc(data) != _FOOTER.unpack(body[length:])[0]:
            yield FrameError(index, offset, "corrupted", "the data's checksum does not match")
            return
        yield data
        index += 1
        offset += _HEADER.size + len(body)


def scan(handle: BinaryIO, limit: int | None = None) -> Scan:
    """Read every record up to ``limit`` (or the first damage) from an open binary file."""
    records: list[bytes] = []
    for item in iter_frames(handle, limit):
        if isinstance(item, FrameError):
            return Scan(tuple(records), item)
        records.append(item)
    return Scan(tuple(records))
