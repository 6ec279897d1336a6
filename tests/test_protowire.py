"""``components.protowire`` reads what the real protobuf library writes, and names what is wrong with bytes
that are not wire format. The messages come from ``google.protobuf``'s own descriptor and wrapper protos, so
no TensorFlow is needed and every expectation is a value set on a message, not a byte string written here."""

from __future__ import annotations

import struct

import pytest
from google.protobuf import descriptor_pb2, wrappers_pb2

from components.discovery.bundle import BundleIndexError, parse_bundle_index
from components.protowire import WireFormatError, as_int64, iter_fields, read_varint


def by_number(message: bytes) -> dict[int, list[int | bytes]]:
    fields: dict[int, list[int | bytes]] = {}
    for number, value in iter_fields(message):
        fields.setdefault(number, []).append(value)
    return fields


@pytest.mark.parametrize("value", [1, 127, 128, 300, 2**32, 2**63, 2**64 - 1])
def test_unsigned_varints_as_protobuf_encodes_them(value: int) -> None:
    data = wrappers_pb2.UInt64Value(value=value).SerializeToString()
    assert list(iter_fields(data)) == [(1, value)]
    assert read_varint(data, 1) == (value, len(data))  # after the one-byte tag, up to the end


@pytest.mark.parametrize("value", [-1, -300, -(2**31), -(2**63), 2**63 - 1])
def test_signed_int64_and_int32_come_back_through_as_int64(value: int) -> None:
    [(_, wide)] = iter_fields(wrappers_pb2.Int64Value(value=value).SerializeToString())
    assert as_int64(wide) == value
    if -(2**31) <= value < 2**31:  # a negative int32 is written sign-extended to 64 bits, like an int64
        [(_, narrow)] = iter_fields(wrappers_pb2.Int32Value(value=value).SerializeToString())
        assert as_int64(narrow) == value


def test_every_wire_type_of_a_mixed_message() -> None:
    option = descriptor_pb2.UninterpretedOption(
        name=[
            descriptor_pb2.UninterpretedOption.NamePart(name_part="exportflow", is_extension=False),
            descriptor_pb2.UninterpretedOption.NamePart(name_part="wire.test", is_extension=True),
        ],
        identifier_value="ident",
        positive_int_value=2**64 - 1,
        negative_int_value=-(2**63),
        double_value=-0.1,
        string_value=b"\x00\xff raw",
        aggregate_value="a { b: 1 }",
    )
    fields = by_number(option.SerializeToString())
    names = [by_number(part) for part in fields[2]]  # nested messages come as bytes, walked again
    assert [(n[1], n[2]) for n in names] == [
        ([p.name_part.encode()], [int(p.is_extension)]) for p in option.name
    ]
    assert fields[3] == [option.identifier_value.encode()]
    assert fields[4] == [option.positive_int_value]
    assert [as_int64(v) for v in fields[5]] == [option.negative_int_value]
    [double_bits] = fields[6]
    assert struct.unpack("<d", double_bits.to_bytes(8, "little")) == (option.double_value,)
    assert fields[7] == [option.string_value]
    assert fields[8] == [option.aggregate_value.encode()]


def test_fixed32_and_packed_repeated_fields() -> None:
    [(number, bits)] = iter_fields(wrappers_pb2.FloatValue(value=-2.5).SerializeToString())
    assert number == 1 and struct.unpack("<f", bits.to_bytes(4, "little")) == (-2.5,)
    location = descriptor_pb2.SourceCodeInfo.Location(path=[4, 0, 2, 300], span=[10, 2, 2**31 - 1])
    packed = by_number(location.SerializeToString())  # `path` and `span` are [packed = true]: one LEN each
    for number, expected in ((1, location.path), (2, location.span)):
        [run] = packed[number]
        values, position = [], 0
        while position < len(run):
            value, position = read_varint(run, position)
            values.append(value)
        assert values == list(expected)


def test_a_real_file_descriptor_walks_to_its_message_names() -> None:
    """descriptor.proto as protoc serialized it into descriptor_pb2: nested messages, options, enums."""
    file_proto = descriptor_pb2.DESCRIPTOR.serialized_pb
    fields = by_number(file_proto)  # FileDescriptorProto: name = 1, message_type = 4 (DescriptorProto)
    assert fields[1] == [descriptor_pb2.DESCRIPTOR.name.encode()]
    message_names = [by_number(message)[1][0].decode() for message in fields[4]]
    assert message_names == list(descriptor_pb2.DESCRIPTOR.message_types_by_name)


TRUNCATED_TAG = b"\x80"
TRUNCATED_VALUE = b"\x08\x80\x80"
TRUNCATED_LENGTH = b"\x12\x80"
ELEVEN_BYTE_VARINT = b"\x08" + b"\xff" * 10 + b"\x01"
TEN_BYTES_OVER_64_BITS = b"\x08" + b"\xff" * 9 + b"\x7f"  # the tenth byte may carry one bit, not seven


@pytest.mark.parametrize(
    "data, message",
    [
        (TRUNCATED_TAG, r"^truncated varint at byte 0: the data ends inside it$"),
        (TRUNCATED_VALUE, r"^truncated varint at byte 1: "),
        (TRUNCATED_LENGTH, r"^truncated varint at byte 1: "),
        (ELEVEN_BYTE_VARINT, r"^varint at byte 1 is longer than 64 bits \(over 10 bytes\)$"),
        (TEN_BYTES_OVER_64_BITS, r"^varint at byte 1 is longer than 64 bits$"),
        (b"\x12\x05abc", r"^field 2 at byte 0 runs past the end of the message \(5 bytes needed, 3 left\)$"),
        (b"\x08\x01\x19\x01\x02", r"^field 3 at byte 2 runs past the end .*\(8 bytes needed, 2 left\)$"),
        (b"\x2d\x00\x00\x80", r"^field 5 at byte 0 runs past the end .*\(4 bytes needed, 3 left\)$"),
        (b"\x08\x01\x1b", r"^field 3 at byte 2 has wire type 3; only 0, 1, 2 and 5 exist"),
        (b"\x0c", r"^field 1 at byte 0 has wire type 4;"),
        (b"\x0e", r"^field 1 at byte 0 has wire type 6;"),
        (b"\x0f", r"^field 1 at byte 0 has wire type 7;"),
    ],
    ids=[
        "truncated-tag",
        "truncated-varint-value",
        "truncated-length",
        "varint-over-10-bytes",
        "varint-over-64-bits",
        "length-past-end",
        "fixed64-past-end",
        "fixed32-past-end",
        "group-start",
        "group-end",
        "wire-type-6",
        "wire-type-7",
    ],
)
def test_malformed_input_names_what_is_wrong_and_where(data: bytes, message: str) -> None:
    with pytest.raises(WireFormatError, match=message) as raised:
        list(iter_fields(data))
    assert isinstance(raised.value, ValueError)  # callers that catch ValueError keep working


def test_read_varint_past_the_end() -> None:
    with pytest.raises(WireFormatError, match=r"^truncated varint at byte 3: the data ends inside it$"):
        read_varint(b"\x01\x02\x03", 3)


def test_the_checkpoint_index_reader_turns_it_into_its_own_error() -> None:
    # a footer whose first block handle is an endless varint, then the LevelDB table magic number
    footer = b"\xff" * 40 + struct.pack("<Q", 0xDB4775248B80FB57)
    with pytest.raises(
        BundleIndexError, match=r"^malformed checkpoint index: varint at byte 0 is longer than 64 bits"
    ) as raised:
        parse_bundle_index(footer)
    assert isinstance(raised.value.__cause__, WireFormatError)
