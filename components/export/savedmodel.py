"""SavedModel helpers: inspect signatures cheaply and verify every tag by loading it."""

from __future__ import annotations

import os

from components.export.errors import VerificationError


def read_saved_model_proto(export_dir: str):
    """The parsed ``saved_model.pb`` (no graph is built)."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    pb = os.path.join(export_dir, "saved_model.pb")
    pbtxt = os.path.join(export_dir, "saved_model.pbtxt")
    if os.path.exists(pb):
        with open(pb, "rb") as handle:
            proto.ParseFromString(handle.read())
    elif os.path.exists(pbtxt):
        from google.protobuf import text_format

        with open(pbtxt, encoding="utf-8") as handle:
            text_format.Parse(handle.read(), proto)
    else:
        raise VerificationError(f"{export_dir} holds no saved_model.pb or saved_model.pbtxt")
    return proto


def signatures_by_tag(export_dir: str) -> dict[str, tuple[str, ...]]:
    """``{"serve": ("classification", "serving_default"), "train": (...), ...}`` from the proto."""
    out: dict[str, tuple[str, ...]] = {}
    for meta_graph in read_saved_model_proto(export_dir).meta_graphs:
        tags = ",".join(sorted(meta_graph.meta_info_def.tags))
        out[tags] = tuple(sorted(meta_graph.signature_def))
    return out


def verify_loads(export_dir: str, tags: list[str] | None = None) -> dict[str, tuple[str, ...]]:
    """Load every MetaGraph (or the given tags) with its variables in a fresh graph; return signatures."""
    import tensorflow as tf

    found = signatures_by_tag(export_dir)
    for tag_set in tags or list(found):
        try:
            with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
                tf.compat.v1.saved_model.loader.load(session, tag_set.split(","), export_dir)
        except Exception as exc:  # TF raises a zoo of types for broken SavedModels
            raise VerificationError(
                f"{export_dir} does not load under tags {tag_set!r}: {type(exc).__name__}: {exc}"
            ) from exc
    return found
