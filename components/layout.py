"""Every name exportflow gives a file or folder, and the one multi-graph layout, in one place.

First the names TF Serving and the SavedModel format fix (ours must match theirs), then exportflow's own
inside an export, then the multi-graph layout, then its bookkeeping beside the exports. Relative paths
use ``/``; join them with :func:`local_path` on local disk, or with a storage's ``join`` on an object store.

What a version folder holds::

    <version>/saved_model.pb (or .pbtxt)                 the graph; TF Serving loads a folder that has it
    <version>/variables/variables.index, .data-*         the variables (a TF checkpoint)
    <version>/assets.extra/tf_serving_warmup_requests    warmup requests, replayed by TF Serving on load
    <version>/assets.extra/export_manifest.json          exportflow's provenance manifest
    <version>/<graph>/... + <version>/export_set.json    a multi-graph set instead: one SavedModel per graph

**The multi-graph layout.** A set (``DistributedExporter``: ``entry``, ``ps_<i>``, dense graphs; or one
graph per mode) has two physical forms, and :func:`served_path` is the one mapping between them:

* *kept together* while it is written, staged and warmed: ``<version>/<graph>/`` plus
  ``<version>/export_set.json`` (:data:`SET_MANIFEST`, :func:`set_document`, whose ``graphs`` give each
  graph's folder relative to it). One folder, so the set appears by one rename (or one ``.staged.json``)
  and is never seen half-written;
* *served*: ``<base>/<graph>/<version>/`` (:func:`served_path`), because TF Serving loads each graph as
  its own model, with base path ``<base>/<graph>``. Graph ``G`` of the set kept at ``<version>/`` goes to
  ``served_path(version, G)``; a single-graph version is ``<version>/`` in both forms. Graphs move in
  :func:`graph_order`: the graph serving calls first (``entry``) last, as it needs the others.

Two writers produce the served form, and they differ only in the document that says the set is whole:
the publish protocol writes its commit marker, ``<base>/.exportflow/<version>.published.json``
(:func:`marker_path`; components/publish/marker.py), which lists every file with its checksum and is
written under the version lock; the seed-compatible library (``DistributedExporter``, per-mode
``export_all_saved_models``) has no lock, and moves the set's own document to
``<base>/export_sets/<version>.json`` (:func:`library_set_path`) after every graph, merged with the one
another exporter of the same version wrote (``include_graphs``). Same format as ``export_set.json``, same
reader (``components.export.savedmodel.verify.read_set_document``). No on-disk name changed when these
definitions moved here, so the folders users already have need no second reader.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# --- fixed by TF Serving and the SavedModel format
SAVED_MODEL_PB = "saved_model.pb"
SAVED_MODEL_PBTXT = "saved_model.pbtxt"
GRAPH_FILES = (SAVED_MODEL_PB, SAVED_MODEL_PBTXT)  # either one makes a folder a SavedModel
VARIABLES_PREFIX = "variables/variables"  # the checkpoint prefix of a SavedModel's variables
VARIABLES_INDEX = f"{VARIABLES_PREFIX}.index"
ASSETS_EXTRA = "assets.extra"  # files beside the SavedModel that TF Serving does not load as assets
WARMUP_FILE = "tf_serving_warmup_requests"
WARMUP_PATH = f"{ASSETS_EXTRA}/{WARMUP_FILE}"

# --- exportflow's own, inside an export
MANIFEST_PATH = f"{ASSETS_EXTRA}/export_manifest.json"  # provenance: checkpoint, metrics, every file
ENTRY_GRAPH = "entry"  # the graph serving calls first in a distributed set; published last

# --- the multi-graph layout (see the module docstring)
SET_MANIFEST = "export_set.json"  # <version>/export_set.json: the set document of a set kept together
SET_FORMAT = "exportflow.export_set/1"  # its "format" field; a document without it is not ours
EXPORT_SETS_DIR = "export_sets"  # library's served form: <base>/export_sets/<version>.json

# --- exportflow's bookkeeping beside the exports
BOOKKEEPING = ".exportflow"  # TF Serving ignores it; <destination>/.exportflow/<model>/ holds ledger and staging
LEDGER_FILE = "ledger.json"  # <destination>/.exportflow/<model>/ledger.json
STAGING_FOLDER = "staging"  # <destination>/.exportflow/<model>/staging (or <staging_dir>/<model>/staging)
LEASES_FOLDER = ".exportflow-leases"  # default discovery lease root, inside model_dir
TEMP_PREFIX = ".tmp-"  # a folder being written; retention removes crashed ones
PROBE_PREFIX = ".exportflow-preflight-"  # preflight's write probe, removed at once
# beside the versions of a staging or publish folder, under <base>/.exportflow/: join them with the
# path functions below (marker_path, lock_path, ...), which staging/ and publish/ both use
STAGED_SUFFIX = ".staged.json"  # <version>.staged.json: the version is completely staged
PUBLISHED_SUFFIX = ".published.json"  # <version>.published.json: the commit marker of a publication
LEASE_SUFFIX = ".lease.json"  # <version>.lease.json: who is staging, publishing or removing it
BUILDING = "building"  # .exportflow/building/[<graph>/]<version>/: a version being assembled
CURRENT = "current"  # .exportflow/current: the version serving uses now


def variables_data_shard(index: int, total: int) -> str:
    """``variables/variables.data-00000-of-00001`` for shard ``index`` of ``total``."""
    return f"{VARIABLES_PREFIX}.data-{index:05d}-of-{total:05d}"


def local_path(folder: str, relative: str) -> str:
    """``relative`` (a ``/``-separated name from this module) under a local ``folder``."""
    return os.path.join(folder, *relative.split("/"))


# --- the multi-graph layout's paths, relative to a base (an export base, a staging strategy folder,
# or a servable at the destination)


def served_path(version: str, graph: str | None) -> str:
    """Where TF Serving loads graph ``graph`` of ``version`` from: ``<graph>/<version>``; a single graph:
    ``<version>``. The one mapping from the kept-together form: ``<version>/<graph>`` goes here."""
    return f"{graph}/{version}" if graph else version


def graph_order(graphs: Iterable[str | None], last: Sequence[str] = (ENTRY_GRAPH,)) -> list[str | None]:
    """The order a set's graphs move into their served place: the others by name, then ``last`` in its
    order (the graph serving calls first, which needs the others: ``entry``; ``predict`` for per-mode)."""
    names = list(graphs)
    return sorted((g for g in names if g not in last), key=lambda g: g or "") + [g for g in last if g in names]


def library_set_path(version: str) -> str:
    """The library's set document beside its served graphs: ``export_sets/<version>.json``."""
    return f"{EXPORT_SETS_DIR}/{version}.json"


def set_document(
    layout: str, version: str, graphs: Mapping[str, Mapping[str, Any]], extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The set document: ``{"format", "layout", "version", "graphs": {name: {"path", "signatures"}}, ...}``;
    ``path`` is the graph's folder relative to the document's (the graph's name, as written)."""
    return {"format": SET_FORMAT, "layout": layout, "version": version, "graphs": dict(graphs), **dict(extra or {})}


def is_set_document(document: object) -> bool:
    return isinstance(document, dict) and document.get("format") == SET_FORMAT and isinstance(document.get("graphs"), dict)


# --- bookkeeping paths, relative to the base whose versions they describe


def marker_path(version: str) -> str:
    """``.exportflow/<version>.published.json``: the commit marker of a publication."""
    return f"{BOOKKEEPING}/{version}{PUBLISHED_SUFFIX}"


def lock_path(version: str) -> str:
    """``.exportflow/<version>.lease.json``: the version lock (staging, publishing or removing it)."""
    return f"{BOOKKEEPING}/{version}{LEASE_SUFFIX}"


def staged_marker_path(version: str) -> str:
    """``.exportflow/<version>.staged.json``: the version is completely staged (object stores)."""
    return f"{BOOKKEEPING}/{version}{STAGED_SUFFIX}"


def version_of(name: str, suffix: str) -> str | None:
    """The version a bookkeeping file ``<version><suffix>`` (e.g. ``300.lease.json``) is about; None when
    ``name`` is another kind of file."""
    return name[: -len(suffix)] if name.endswith(suffix) else None


def building_path(version: str, graph: str | None) -> str:
    """``.exportflow/building/[<graph>/]<version>``: a graph's version assembled out of TF Serving's sight."""
    return f"{BUILDING_PATH}/{served_path(version, graph)}"


BUILDING_PATH = f"{BOOKKEEPING}/{BUILDING}"  # every version being assembled, by graph
CURRENT_PATH = f"{BOOKKEEPING}/{CURRENT}"  # the version serving uses now
