"""The protocol-buffer wire format, read without a protobuf library.

Two readers need a few fields of protos whose generated classes they cannot rely on: discovery reads a
checkpoint's ``.index`` (LevelDB varints and ``BundleEntryProto``) without importing TensorFlow, and the TFX
interop reads ``saved_model.pb`` in an environment where TensorFlow cannot be installed. Both only walk a
message's fields by number, so this module is that walk and nothing more: pure Python, standard library only
(it is imported in the TF-free TFX environment). Malformed input raises ``WireFormatError``, which each
caller turns into its own error family.

Encoding (protobuf.dev/programming-guides/encoding): a message is a sequence of (tag, value) with
tag = field number << 3 | wire type; wire type 0 is a varint, 1 eight little-endian bytes, 2 a varint length
then that many bytes, 5 four little-endian bytes; 3 and 4 (groups) are long deprecated and not read here.
"""

from __future__ import annotations

from collections.abc import Iterator

VARINT, I64, LEN, I32 = 0, 1, 2, 5
_FIXED_WIDTH = {I64: 8, I32: 4}
_MAX_VARINT_BYTES = 10  # 64 bits in 7-bit groups

FieldValue = int | bytes  # LEN fields as bytes, every other wire type as an unsigned integer


class WireFormatError(ValueError):
    """The bytes are not protobuf wire format; the message says what is wrong and at which byte."""


def read_varint(data: bytes, position: int) -> tuple[int, int]:
    """The unsigned varint starting at ``position`` and the position just after it.

    Signed ``int64``/``int32`` fields arrive as their 64-bit two's complement: see ``as_int64``.
    """
    result = 0
    for index in range(_MAX_VARINT_BYTES):
        if position + index >= len(data):
            raise WireFormatError(f"truncated varint at byte {position}: the data ends inside it")
        byte = data[position + index]
        result |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            if result >> 64:
                raise WireFormatError(f"varint at byte {position} is longer than 64 bits")
            return result, position + index + 1
    raise WireFormatError(
        f"varint at byte {position} is longer than 64 bits (over {_MAX_VARINT_BYTES} bytes)"
    )


def iter_fields(message: bytes) -> Iterator[tuple[int, FieldValue]]:
    """(field number, value) for each field of one serialized message, in the order written.

    Repeated fields come once per element (packed ones as one LEN value); nested messages come as bytes,
    to be walked with ``iter_fields`` again.
    """
    position = 0
    while position < len(message):
        start = position
        tag, position = read_varint(message, position)
        number, wire_type = tag >> 3, tag & 7
        if wire_type == VARINT:
            value, position = read_varint(message, position)
            yield number, value
            continue
        if wire_type == LEN:
            size, position = read_varint(message, position)
        elif wire_type in _FIXED_WIDTH:
            size = _FIXED_WIDTH[wire_type]
        else:
            raise WireFormatError(
                f"field {number} at byte {start} has wire type {wire_type}; only 0, 1, 2 and 5 exist "
                "outside deprecated groups"
            )
        end = position + size
        if end > len(message):
            raise WireFormatError(
                f"field {number} at byte {start} runs past the end of the message "
                f"({size} bytes needed, {len(message) - position} left)"
            )
        raw = message[position:end]
        yield number, raw if wire_type == LEN else int.from_bytes(raw, "little")
        position = end


def as_int64(value: int) -> int:
    """A varint or fixed64 read as unsigned, reinterpreted as the signed 64-bit integer it encodes."""
    return value - (1 << 64) if value >= 1 << 63 else value
