"""SavedModel helpers: inspect signatures cheaply and verify every tag of every graph of an export.

An export is either one SavedModel (``saved_model.pb`` at its root) or a **set** of them kept together:
one SavedModel per graph in ``<root>/<graph>/`` plus ``<root>/export_set.json`` naming the graphs (per-mode
exports, DistributedExporter; the layout and the document's format are components/layout.py's, and
:func:`read_set_document` is their one reader). Verification comes in two depths:

* ``full`` — the ``graph`` checks, then load every MetaGraph with its variables in a fresh session
  (restores every variable, so it costs a read of the variables per tag; restoring alone would not
  notice a variable of the wrong shape, which the index check does);
* ``graph`` — import every MetaGraph into a fresh graph, resolve every signature tensor, and check that
  every variable the graph holds is in ``variables/variables.index`` with the same dtype and shape. It
  reads the index only, so it stays O(number of variables) for exports whose variables are placed by
  reference.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, Literal

from components.export.errors import VerificationError
from components.layout import (
    GRAPH_FILES,
    SAVED_MODEL_PB,
    SAVED_MODEL_PBTXT,
    SET_FORMAT,
    SET_MANIFEST,
    VARIABLES_PREFIX,
    is_set_document,
    local_path,
    set_document,
)

VerifyDepth = Literal["full", "graph"]


def read_saved_model_proto(export_dir: str):
    """The parsed ``saved_model.pb`` (no graph is built)."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    pb = os.path.join(export_dir, SAVED_MODEL_PB)
    pbtxt = os.path.join(export_dir, SAVED_MODEL_PBTXT)
    from google.protobuf import message, text_format

    try:
        if os.path.exists(pb):
            with open(pb, "rb") as handle:
                proto.ParseFromString(handle.read())
        elif os.path.exists(pbtxt):
            with open(pbtxt, encoding="utf-8") as handle:
                text_format.Parse(handle.read(), proto)
        else:
            raise VerificationError(f"{export_dir} holds no {SAVED_MODEL_PB} or {SAVED_MODEL_PBTXT}")
    except (message.DecodeError, text_format.ParseError, UnicodeDecodeError) as exc:
        raise VerificationError(f"{export_dir}: the SavedModel proto does not parse: {exc}") from exc
    return proto


def is_saved_model_dir(path: str) -> bool:
    return any(os.path.isfile(os.path.join(path, name)) for name in GRAPH_FILES)


def signatures_by_tag(export_dir: str) -> dict[str, tuple[str, ...]]:
    """``{"serve": ("classification", "serving_default"), "train": (...), ...}`` from the proto."""
    out: dict[str, tuple[str, ...]] = {}
    for meta_graph in read_saved_model_proto(export_dir).meta_graphs:
        tags = ",".join(sorted(meta_graph.meta_info_def.tags))
        out[tags] = tuple(sorted(meta_graph.signature_def))
    return out


def graph_dirs(root: str) -> dict[str, str]:
    """``{graph name: directory}`` of an export; a single SavedModel is the one graph ``""``."""
    if is_saved_model_dir(root):
        return {"": root}
    manifest = read_set_manifest(root)
    if manifest is not None:
        return {name: os.path.join(root, entry["path"]) for name, entry in manifest["graphs"].items()}
    found = (
        {
            name: os.path.join(root, name)
            for name in sorted(os.listdir(root))
            if os.path.isdir(os.path.join(root, name)) and is_saved_model_dir(os.path.join(root, name))
        }
        if os.path.isdir(root)
        else {}
    )
    if not found:
        raise VerificationError(f"{root} holds neither a SavedModel nor a set of them ({SET_MANIFEST})")
    return found


def export_signatures(root: str) -> dict[str, tuple[str, ...]]:
    """Signatures by tag set; for a set, keyed ``"<graph>:<tags>"`` (e.g. ``"ps_0:serve"``)."""
    out: dict[str, tuple[str, ...]] = {}
    for graph, path in graph_dirs(root).items():
        for tags, names in signatures_by_tag(path).items():
            out[f"{graph}:{tags}" if graph else tags] = names
    return out


def verify_export(root: str, depth: VerifyDepth = "full") -> dict[str, tuple[str, ...]]:
    """Verify every graph of an export at ``depth``; signatures keyed as in :func:`export_signatures`."""
    out: dict[str, tuple[str, ...]] = {}
    for graph, path in graph_dirs(root).items():
        for tags, names in verify_loads(path, restore=depth == "full").items():
            out[f"{graph}:{tags}" if graph else tags] = names
    return out


def verify_loads(
    export_dir: str, tags: list[str] | None = None, *, restore: bool = True
) -> dict[str, tuple[str, ...]]:
    """Load every MetaGraph (or the given tags) in a fresh graph and return the signatures by tag.

    Always imports the graph and checks variables against the index; ``restore=True`` then also loads
    with variables (``loader.load``). See the module docstring.
    """
    import tensorflow as tf

    proto = read_saved_model_proto(export_dir)
    found = {",".join(sorted(mg.meta_info_def.tags)): mg for mg in proto.meta_graphs}
    for tag_set in tags or list(found):
        if tag_set not in found:
            raise VerificationError(
                f"{export_dir} has no MetaGraph tagged {tag_set!r}; it has {sorted(found)}"
            )
        try:
            with tf.Graph().as_default() as graph:
                _import_and_check(graph, found[tag_set], export_dir)
            if restore:
                # Restoring does not check shapes (resource variables take whatever is assigned), so the
                # index check above runs first; the load proves every tensor reads and the init ops run.
                config = tf.compat.v1.ConfigProto(allow_soft_placement=True)
                with (
                    tf.Graph().as_default() as graph,
                    tf.compat.v1.Session(graph=graph, config=config) as session,
                ):
                    tf.compat.v1.saved_model.loader.load(session, tag_set.split(","), export_dir)
        except VerificationError:
            raise
        except Exception as exc:  # TF raises a zoo of types for broken SavedModels
            raise VerificationError(
                f"{export_dir} does not load under tags {tag_set!r}: {type(exc).__name__}: {exc}"
            ) from exc
    return {tag_set: tuple(sorted(found[tag_set].signature_def)) for tag_set in tags or list(found)}


def _import_and_check(graph: Any, meta_graph: Any, export_dir: str) -> None:
    import tensorflow as tf

    from components.export.savedmodel.by_reference import checkpoint_mismatches, graph_variable_specs

    tf.compat.v1.train.import_meta_graph(meta_graph, clear_devices=True)
    for name, signature in meta_graph.signature_def.items():
        if name.startswith("__saved_model_"):  # TF2's init/train op entries name ops, not tensors
            continue
        for tensor_info in [*signature.inputs.values(), *signature.outputs.values()]:
            for tensor_name in _tensor_names(tensor_info):
                try:
                    graph.get_tensor_by_name(tensor_name)
                except (KeyError, ValueError) as exc:
                    raise VerificationError(
                        f"{export_dir}: signature {name!r} names tensor {tensor_name!r}, which the graph lacks"
                    ) from exc
    specs = graph_variable_specs(graph)
    if not specs:
        return
    prefix = local_path(export_dir, VARIABLES_PREFIX)
    if not os.path.exists(f"{prefix}.index"):
        raise VerificationError(
            f"{export_dir}: the graph has {len(specs)} variables but variables/ has no index"
        )
    problems = checkpoint_mismatches(specs, prefix)
    if problems:
        raise VerificationError(
            f"{export_dir}: variables/ does not match the graph: " + "; ".join(problems[:5])
        )


def _tensor_names(tensor_info: Any) -> list[str]:
    encoding = tensor_info.WhichOneof("encoding")
    if encoding == "name":
        return [tensor_info.name]
    if encoding == "coo_sparse":
        sparse = tensor_info.coo_sparse
        return [sparse.values_tensor_name, sparse.indices_tensor_name, sparse.dense_shape_tensor_name]
    return []  # composite tensors: their components are checked by a full load


# ------------------------------------------------------------------------------------------------
# The set document: which graphs make up a multi-graph export (all of them publish, or none).


def write_set_manifest(
    root: str, *, layout: str, version: str, graphs: Mapping[str, str], extra: Mapping[str, Any] | None = None
) -> str:
    """Write ``<root>/export_set.json`` listing each graph's folder, tags and signatures.

    Files are not listed: later stages (warmup) still add some; publication lists and checksums them.
    """
    entries = {}
    for name, rel in graphs.items():
        path = os.path.join(root, rel)
        entries[name] = {
            "path": rel,
            "signatures": {k: list(v) for k, v in signatures_by_tag(path).items()},
        }
    return write_set_document(os.path.join(root, SET_MANIFEST), set_document(layout, version, entries, extra))


def write_set_document(target: str, document: Mapping[str, Any]) -> str:
    """Write a set document to ``target`` atomically (temp file, fsync, rename)."""
    tmp = f"{target}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=1, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, target)
    return target


def read_set_manifest(root: str) -> dict[str, Any] | None:
    """The set document of a set kept together at ``root`` (None: ``root`` holds none)."""
    return read_set_document(os.path.join(root, SET_MANIFEST))


def read_set_document(path: str) -> dict[str, Any] | None:
    """A set document wherever it lies (``<version>/export_set.json``, the library's
    ``export_sets/<version>.json``); None when absent, ``VerificationError`` when it is not one."""
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise VerificationError(f"{path} is not a readable set manifest: {exc}") from exc
    if not is_set_document(document):
        raise VerificationError(f"{path} is not an {SET_FORMAT} manifest")
    return document
