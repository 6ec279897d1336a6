"""What a SavedModel says about itself, read from its files without TensorFlow.

The TFX environment cannot hold TensorFlow (TF 2.15 needs protobuf < 5, the TFX SDK protobuf >= 6), yet the
manifest records the TF build that wrote the model and its signatures by tag set, as exportflow's own
export does. Those sit in a few fields of the SavedModel proto, read here from the protobuf wire format
(``components.protowire``):

    SavedModel.meta_graphs = 2 -> MetaGraphDef.meta_info_def = 1 -> MetaInfoDef.tags = 4,
                                                                   MetaInfoDef.tensorflow_version = 5
                                  MetaGraphDef.signature_def = 5 (map entries: key = 1)

and the number of TF Serving warmup requests in ``assets.extra/tf_serving_warmup_requests``, a TFRecord
file (each record: 8-byte length, 4-byte CRC of the length, the data, 4-byte CRC of the data).
"""

from __future__ import annotations

import dataclasses
import os
import struct

from components.protowire import WireFormatError, iter_fields


class SavedModelProtoError(ValueError):
    """``saved_model.pb`` is missing or not a SavedModel proto."""


@dataclasses.dataclass(frozen=True)
class SavedModelInfo:
    tensorflow_version: str  # of the first MetaGraph ("" if the writer left it empty)
    signatures: dict[str, tuple[str, ...]]  # "serve" / "eval,..." -> sorted signature names


def read_savedmodel_info(export_dir: str) -> SavedModelInfo:
    path = os.path.join(export_dir, "saved_model.pb")
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError as exc:
        raise SavedModelProtoError(f"{path} does not exist: the Model artifact holds no SavedModel") from exc
    versions: list[str] = []
    signatures: dict[str, tuple[str, ...]] = {}
    try:
        for number, meta_graph in iter_fields(data):
            if number != 2 or not isinstance(meta_graph, bytes):
                continue
            tags: list[str] = []
            names: list[str] = []
            for field, value in iter_fields(meta_graph):
                if field == 1 and isinstance(value, bytes):
                    for info_field, info_value in iter_fields(value):
                        if info_field == 4 and isinstance(info_value, bytes):
                            tags.append(info_value.decode())
                        elif info_field == 5 and isinstance(info_value, bytes):
                            versions.append(info_value.decode())
                elif field == 5 and isinstance(value, bytes):
                    names += [v.decode() for f, v in iter_fields(value) if f == 1 and isinstance(v, bytes)]
            signatures[",".join(sorted(tags))] = tuple(sorted(names))
    except (UnicodeDecodeError, WireFormatError) as exc:
        raise SavedModelProtoError(f"{path} is not a SavedModel proto: {exc}") from exc
    if not signatures:
        raise SavedModelProtoError(f"{path} holds no MetaGraph: it is not a SavedModel")
    return SavedModelInfo(tensorflow_version=versions[0] if versions else "", signatures=signatures)


def count_warmup_records(export_dir: str, warmup_path: str) -> int:
    """Records in the SavedModel's warmup file (0 without one); raises when the file is truncated."""
    path = os.path.join(export_dir, *warmup_path.split("/"))
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return 0
    count = position = 0
    while position < len(data):
        if position + 12 > len(data):
            raise SavedModelProtoError(f"{path} is truncated: record {count + 1} has no complete header")
        (length,) = struct.unpack_from("<Q", data, position)
        position += 12 + length + 4
        if position > len(data):
            raise SavedModelProtoError(f"{path} is truncated: record {count + 1} runs past the end of the file")
        count += 1
    return count
