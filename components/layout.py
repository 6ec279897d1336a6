"""Every name exportflow gives a file or folder, in one place.

First the names TF Serving and the SavedModel format fix (ours must match theirs), then exportflow's own
inside an export, then its bookkeeping beside the exports. Relative paths use ``/``; join them with
:func:`local_path` on local disk, or with a storage's ``join`` on an object store.

What a version folder holds::

    <version>/saved_model.pb (or .pbtxt)                 the graph; TF Serving loads a folder that has it
    <version>/variables/variables.index, .data-*         the variables (a TF checkpoint)
    <version>/assets.extra/tf_serving_warmup_requests    warmup requests, replayed by TF Serving on load
    <version>/assets.extra/export_manifest.json          exportflow's provenance manifest
    <version>/<graph>/... + <version>/export_set.json    a multi-graph set instead: one SavedModel per graph
"""

from __future__ import annotations

import os

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
SET_MANIFEST = "export_set.json"  # names the graphs of a multi-graph set (all publish, or none)
ENTRY_GRAPH = "entry"  # the graph serving calls first in a distributed set; published last
EXPORT_SETS_DIR = "export_sets"  # library layout <base>/<graph>/<version>/: <base>/export_sets/<version>.json

# --- exportflow's bookkeeping beside the exports
BOOKKEEPING = ".exportflow"  # TF Serving ignores it; <destination>/.exportflow/<model>/ holds ledger and staging
LEDGER_FILE = "ledger.json"  # <destination>/.exportflow/<model>/ledger.json
STAGING_FOLDER = "staging"  # <destination>/.exportflow/<model>/staging (or <staging_dir>/<model>/staging)
LEASES_FOLDER = ".exportflow-leases"  # default discovery lease root, inside model_dir
TEMP_PREFIX = ".tmp-"  # a folder being written; retention removes crashed ones
PROBE_PREFIX = ".exportflow-preflight-"  # preflight's write probe, removed at once
# beside the versions of a staging or publish folder, under <base>/.exportflow/ (publish/ and staging/
# still spell these themselves; they are listed here so there is one place to look)
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
