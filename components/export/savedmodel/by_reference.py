"""Variables by reference: a SavedModel's ``variables/`` *is* a TF checkpoint, so place the checkpoint there.

A normal export restores every variable into a session and saves it again — O(size of the model) in
time and memory. Here the checkpoint's ``.index`` and ``.data-*`` files become
``variables/variables.index`` / ``variables/variables.data-*`` next to the exported graph: a hard link
when both sit on one filesystem (O(1)), a copy otherwise. Extra tensors in the checkpoint (optimizer
slots, other modes' variables) are ignored when the SavedModel loads.

With staging on an object store that also holds the checkpoint, the data shards need not reach the worker
at all: inside :func:`deferring`, a shard that is only on the store is not placed locally but recorded
(``DeferredShards.placed``), and staging makes it a server-side copy of the checkpoint's object. Only the
``.index`` is local, which is all graph-level verification reads.

It is only done when it is provably right: every variable the graph holds must be in the checkpoint's
index under the same name, with the same dtype and shape, and the graph must use the default saver.
Otherwise the caller falls back to a normal export and logs the reasons from :func:`reference_blockers`.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import glob
import logging
import os
import re
from collections.abc import Iterator, Mapping
from typing import Any

from components.export.errors import CheckpointMismatchError
from components.storage import ObjectInfo, storage_for
from components.storage.registry import scheme_of

log = logging.getLogger(__name__)
_DATA_SHARD = re.compile(r"\.data-(\d{5})-of-(\d{5})$")


@dataclasses.dataclass(frozen=True)
class VariableSpec:
    dtype: str
    shape: tuple[int, ...] | None  # None when not fully known


@dataclasses.dataclass
class DeferredShards:
    """Data shards of a checkpoint that stay on their store (suffix ``.data-NNNNN-of-MMMMM`` → object)."""

    objects: dict[str, ObjectInfo]
    placed: list[tuple[str, ObjectInfo]] = dataclasses.field(default_factory=list)  # (local target, object)


_deferred: contextvars.ContextVar[DeferredShards | None] = contextvars.ContextVar("deferred_shards", default=None)


@contextlib.contextmanager
def deferring(shards: DeferredShards) -> Iterator[DeferredShards]:
    """Within the block, :func:`place_checkpoint` records ``shards`` instead of needing them on local disk."""
    token = _deferred.set(shards)
    try:
        yield shards
    finally:
        _deferred.reset(token)


@dataclasses.dataclass(frozen=True)
class Placement:
    """How a checkpoint was placed as ``variables/``: ``hardlink`` (same filesystem), ``copy``, or
    ``server_copy`` (data shards deferred to a server-side copy when staged)."""

    method: str
    files: tuple[str, ...]
    bytes: int


def graph_variable_specs(graph: Any) -> dict[str, VariableSpec]:
    """Checkpoint key → dtype and shape of every global variable of ``graph`` (partitions by full name)."""
    import tensorflow as tf

    specs: dict[str, VariableSpec] = {}
    for variable in graph.get_collection(tf.compat.v1.GraphKeys.GLOBAL_VARIABLES):
        slice_info = getattr(variable, "_save_slice_info", None)
        if slice_info is not None:
            name, shape = slice_info.full_name, tuple(slice_info.full_shape)
        else:
            name = variable.op.name
            shape = tuple(variable.shape.as_list()) if variable.shape.is_fully_defined() else None
        specs[name] = VariableSpec(variable.dtype.base_dtype.name, shape)
    return specs


def checkpoint_specs(checkpoint_prefix: str) -> dict[str, VariableSpec]:
    """Dtype and shape of every tensor in a checkpoint, read from its ``.index`` only."""
    import tensorflow as tf

    try:
        reader = tf.train.load_checkpoint(checkpoint_prefix)
    except Exception as exc:  # NotFoundError, DataLossError, ...
        raise CheckpointMismatchError(
            f"cannot read the checkpoint index {checkpoint_prefix}.index: {type(exc).__name__}: {exc}"
        ) from exc
    shapes = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
    return {name: VariableSpec(dtypes[name].name, tuple(shape)) for name, shape in shapes.items()}


def checkpoint_mismatches(expected: Mapping[str, VariableSpec], checkpoint_prefix: str) -> list[str]:
    """Why the checkpoint cannot provide ``expected`` (empty when it can)."""
    found = checkpoint_specs(checkpoint_prefix)
    problems = []
    for name in sorted(expected):
        want = expected[name]
        have = found.get(name)
        if have is None:
            problems.append(f"variable {name!r} is not in the checkpoint")
        elif have.dtype != want.dtype:
            problems.append(
                f"variable {name!r} is {want.dtype} in the graph but {have.dtype} in the checkpoint"
            )
        elif want.shape is not None and have.shape != want.shape:
            problems.append(
                f"variable {name!r} has shape {list(want.shape)} in the graph but {list(have.shape)} in the checkpoint"
            )
    return problems


def reference_blockers(graph: Any, checkpoint_prefix: str, custom_saver: Any = None) -> list[str]:
    """Reasons the checkpoint cannot stand in for this graph's variables (empty: it can)."""
    import tensorflow as tf

    reasons = []
    if custom_saver is not None:
        reasons.append("the model_fn's scaffold sets its own saver, whose checkpoint keys cannot be checked")
    saveables = graph.get_collection(tf.compat.v1.GraphKeys.SAVEABLE_OBJECTS)
    if saveables:
        reasons.append(f"the graph has {len(saveables)} saveable objects that are not variables")
    reasons.extend(checkpoint_mismatches(graph_variable_specs(graph), checkpoint_prefix))
    return reasons


def checkpoint_files(checkpoint_prefix: str) -> list[str]:
    """The ``.index`` and every ``.data-NNNNN-of-MMMMM`` shard of a checkpoint; all must exist."""
    if scheme_of(checkpoint_prefix) == "file":
        data = glob.glob(glob.escape(checkpoint_prefix) + ".data-*")
    else:
        import tensorflow as tf

        data = tf.io.gfile.glob(checkpoint_prefix + ".data-*")
    shards = sorted(p for p in data if _DATA_SHARD.search(p))
    deferred = _deferred.get()
    if not shards and deferred is not None:
        shards = sorted(f"{checkpoint_prefix}{suffix}" for suffix in deferred.objects)
    index = f"{checkpoint_prefix}.index"
    storage = storage_for(checkpoint_prefix)
    if storage.stat(index) is None:
        raise CheckpointMismatchError(f"checkpoint {checkpoint_prefix} has no .index file")
    if not shards:
        raise CheckpointMismatchError(f"checkpoint {checkpoint_prefix} has no .data-* shard")
    total = int(_DATA_SHARD.search(shards[0]).group(2))
    if len(shards) != total:
        raise CheckpointMismatchError(
            f"checkpoint {checkpoint_prefix} has {len(shards)} of {total} data shards; it is incomplete"
        )
    return [index, *shards]


def place_checkpoint(checkpoint_prefix: str, variables_prefix: str) -> Placement:
    """Make ``<variables_prefix>.index`` / ``.data-*`` the checkpoint's files: hard link, else copy."""
    os.makedirs(os.path.dirname(variables_prefix), exist_ok=True)
    source_storage = storage_for(checkpoint_prefix)
    local = scheme_of(checkpoint_prefix) == "file"
    placed, total, linked, server_side = [], 0, True, False
    deferred = _deferred.get()
    for source in checkpoint_files(checkpoint_prefix):
        suffix = source[len(checkpoint_prefix) :]
        target = f"{variables_prefix}{suffix}"
        if deferred is not None and suffix in deferred.objects and not os.path.exists(source):
            deferred.placed.append((target, deferred.objects[suffix]))
            total += deferred.objects[suffix].size
            server_side = True
            continue
        if local:
            source_storage.copy(source, target)  # hard link when possible, else an atomic copy
            same = os.stat(source).st_ino == os.stat(target).st_ino
            linked = linked and same
        else:
            source_storage.download_file(source, target)
            linked = False
        placed.append(target)
        total += os.path.getsize(target)
    method = "server_copy" if server_side else ("hardlink" if linked else "copy")
    return Placement(method, tuple(placed), total)


_saver_class: Any = None


def reference_saver(checkpoint_prefix: str, **saver_kwargs: Any) -> Any:
    """A ``tf.compat.v1.train.Saver`` whose ``save`` places ``checkpoint_prefix`` instead of writing.

    SavedModelBuilder calls ``saver.save(session, <export>/variables/variables)`` exactly once; the
    saver's restore ops (what the SavedModel loader runs) are the ordinary ones. Build it inside the
    graph, like any Saver.
    """
    global _saver_class
    if _saver_class is None:
        import tensorflow as tf

        class _ReferenceSaver(tf.compat.v1.train.Saver):
            def __init__(self, reference_prefix: str, **kwargs: Any) -> None:
                super().__init__(**kwargs)
                self.reference_prefix = reference_prefix
                self.placement: Placement | None = None

            def save(self, sess, save_path, *args, **kwargs):
                self.placement = place_checkpoint(self.reference_prefix, os.fspath(save_path))
                log.info(
                    "placed %s as %s by %s (%d bytes)",
                    self.reference_prefix,
                    save_path,
                    self.placement.method,
                    self.placement.bytes,
                )
                return save_path

        _saver_class = _ReferenceSaver
    return _saver_class(checkpoint_prefix, **saver_kwargs)
