"""Run one export strategy for one evaluated checkpoint: decide, write to a temp folder, verify, hand over.

Versions are the global step (or a timestamp when a strategy asks; a rerun then reuses the version the
ledger recorded), so a rerun finds its own earlier export and skips it (unless forced), and nothing
half-written is ever left under a version name. Multi-graph exports (per-mode, distributed) stage as one
folder ``<version>/<graph>/`` with ``export_set.json``.

Where the version goes is the model's staging location (``components.paths.staging_root``):

* **local disk** — written straight into staging (temp folder, verified, renamed), variables by reference
  as hard links to the checkpoint;
* **an object store** — written into this worker's scratch, then staged (``components.staging``): each
  file uploaded, except bytes already on that store — variables by reference are server-side copies of
  the pinned checkpoint's objects — and checked against the local files before the export is returned.
  A checkpoint that is not on local disk is read through the scratch cache (downloaded once per worker).

The artifact carries the staged URI, never a worker's path. After each export the staging retention
removes crashed temp folders, versions already published, and applies the strategy's
``exports_to_keep``, never removing a version the ledger shows as exported but not yet published.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from typing import Any

from components.artifacts import CheckpointArtifact, EvaluationArtifact, ExportArtifact
from components.discovery.single_files import is_single_file, single_file_objects
from components.export.errors import ExportError, StagingFailed
from components.export.savedmodel.by_reference import DeferredShards, deferring
from components.export.savedmodel.versions import WriteOutcome, Written, choose_version, write_version
from components.export.spec import ExportParams
from components.export.strategies import StrategyContext, create_strategy
from components.ledger import LedgerState
from components.paths import work_dir
from components.staging import cleanup
from components.staging.area import StagingArea, staging_area
from components.staging.errors import StagingError
from components.staging.handover import stage_version
from components.storage import ObjectInfo, StorageError, scheme_of, storage_for
from components.transfer.dedupe import checkpoint_objects
from components.version_folders import temp_dir_name

log = logging.getLogger(__name__)


def export(params: ExportParams, evaluation: EvaluationArtifact) -> ExportArtifact | None:
    """The export artifact, or None when the strategy declines (not blessed, not its turn)."""
    config, strategy_config = params.config, params.strategy
    checkpoint = evaluation.checkpoint
    if not evaluation.blessed:
        log.info("step %d not exported by %s: %s", checkpoint.step, strategy_config.name, evaluation.summary)
        return None
    strategy = create_strategy(strategy_config.kind, strategy_config.name, strategy_config.params)
    if params.adapt_strategy is not None:
        strategy = params.adapt_strategy(strategy)
    area = staging_area(config)
    version = _version(params, strategy.version_scheme, area, checkpoint.step)
    if not area.local and not params.force:
        staged = area.read_staged(strategy_config.name, version)
        if staged is not None:
            log.info("strategy %r: version %s already staged at %s", strategy_config.name, version, area.version_uri(strategy_config.name, version))
            return _artifact(params, evaluation, version, area.version_uri(strategy_config.name, version), _from_record(staged), True)
    # The checkpoint's scratch copy (hard links into the cache) when it is not on local disk: private to
    # this call, removed after it.
    fetched = area.scratch_path("checkpoints", f"{checkpoint.step}-{uuid.uuid4().hex[:12]}")
    try:
        return _export(params, evaluation, strategy, area, version, fetched)
    finally:
        shutil.rmtree(fetched, ignore_errors=True)


def _export(
    params: ExportParams, evaluation: EvaluationArtifact, strategy: Any, area: StagingArea, version: str, fetched: str
) -> ExportArtifact | None:
    checkpoint = evaluation.checkpoint
    if not _deferrable(area, checkpoint, params.strategy.params, strategy):
        return _write(params, evaluation, strategy, area, version, fetched, None)
    objects = checkpoint_objects(storage_for(checkpoint.readable_prefix), checkpoint.readable_prefix)
    deferred = DeferredShards({info.uri[len(checkpoint.readable_prefix) :]: info for info in objects if ".data-" in info.uri})
    try:
        with deferring(deferred):
            return _write(params, evaluation, strategy, area, version, fetched, deferred)
    except StagingFailed:
        raise
    except ExportError as exc:  # e.g. by reference was not possible and the fallback needs the data
        log.warning("export with the checkpoint's data left on the store failed (%s); fetching it and exporting again", exc)
        return _write(params, evaluation, strategy, area, version, fetched, None)


def _deferrable(area: StagingArea, checkpoint: CheckpointArtifact, options: dict[str, Any], strategy: Any) -> bool:
    """Can the data shards stay on the store? Only by reference, verified at graph level (which reads the
    index alone), with the checkpoint and staging on the same object store."""
    prefix = checkpoint.readable_prefix
    same_store = not area.local and scheme_of(prefix) == scheme_of(area.root)
    return same_store and bool(options.get("by_reference")) and getattr(strategy, "verify", "full") == "graph"


def _write(
    params: ExportParams,
    evaluation: EvaluationArtifact,
    strategy: Any,
    area: StagingArea,
    version: str,
    fetched: str,
    deferred: DeferredShards | None,
) -> ExportArtifact | None:
    config, strategy_config, checkpoint = params.config, params.strategy, evaluation.checkpoint
    shutil.rmtree(fetched, ignore_errors=True)
    ctx = StrategyContext(
        config=config,
        evaluation=evaluation,
        checkpoint_path=_local_checkpoint(area, checkpoint, fetched, index_only=deferred is not None),
        ledger=params.ledger,
        is_final=params.is_final,
        work_dir=work_dir(config, f"export-{strategy_config.name}"),
        version=version,
        strategy_name=strategy_config.name,
    )
    decision = strategy.decide(ctx)
    if not decision.export:
        log.info("step %d not exported by %s: %s", checkpoint.step, strategy_config.name, decision.reason)
        return None
    base = area.strategy_uri(strategy_config.name) if area.local else area.scratch_path("export", strategy_config.name)
    outcome = write_version(
        base,
        version,
        lambda out_dir: strategy.write(ctx, out_dir),
        verify=strategy.verify,
        force=params.force if area.local else True,  # scratch: always the fresh export
        label=f"strategy {strategy_config.name!r}",
    )
    if outcome is None:
        return None
    uri = outcome.path
    if not area.local:
        references = {}
        if deferred is not None:  # placed by reference into the temp folder, which became outcome.path
            written_in = os.path.join(base, temp_dir_name(version))
            references = {os.path.relpath(t, written_in).replace(os.sep, "/"): o for t, o in deferred.placed}
        uri = _stage(area, strategy_config.name, checkpoint, outcome, references)
    _retain(area, strategy.exports_to_keep, params, version)
    return _artifact(params, evaluation, version, uri, outcome, outcome.already_exported)


def _artifact(
    params: ExportParams,
    evaluation: EvaluationArtifact,
    version: str,
    uri: str,
    outcome: WriteOutcome,
    already: bool,
) -> ExportArtifact:
    written = outcome.written
    join = os.path.join if scheme_of(uri) == "file" else (lambda a, b: f"{a.rstrip('/')}/{b}")
    return ExportArtifact(
        uri=uri,
        model_name=params.config.name,
        strategy=params.strategy.name,
        version=version,
        step=evaluation.checkpoint.step,
        checkpoint_uri=evaluation.checkpoint.uri,
        tags=tuple(sorted(outcome.signatures)),
        signatures=outcome.signatures,
        metrics=dict(evaluation.metrics),
        already_exported=already,
        graphs={name: join(uri, rel) for name, rel in written.graphs.items()},
        layout=written.layout,
        variables=written.variables,
    )


def _stage(
    area: StagingArea,
    strategy: str,
    checkpoint: CheckpointArtifact,
    outcome: WriteOutcome,
    references: dict[str, ObjectInfo],
) -> str:
    """Stage the scratch export on the object store (see the module docstring); returns its URI.
    ``references``: files placed by reference that are only on the store (relative path → object)."""
    prefix = checkpoint.readable_prefix
    same_store = scheme_of(prefix) == scheme_of(area.root)
    try:
        sources = checkpoint_objects(area.storage, prefix) if same_store else []
        staged = stage_version(
            area,
            strategy,
            outcome.version,
            outcome.path,
            same_bytes=sources,
            references=references,
            info={
                "signatures": {k: list(v) for k, v in outcome.signatures.items()},
                "layout": outcome.written.layout,
                "graphs": dict(outcome.written.graphs),
                "variables": outcome.written.variables,
            },
        )
    except StagingError as exc:
        raise StagingFailed(f"strategy {strategy!r}: {exc}", retryable=exc.retryable) from exc
    finally:
        shutil.rmtree(outcome.path, ignore_errors=True)  # its bytes live on in the scratch cache
    return staged.uri


def _from_record(staged: dict) -> WriteOutcome:
    """What ``.staged.json`` says about an export staged earlier."""
    written = Written(
        layout=staged.get("layout", "single"),
        graphs=dict(staged.get("graphs") or {}),
        variables=staged.get("variables", "saved"),
    )
    signatures = {k: tuple(v) for k, v in (staged.get("signatures") or {}).items()}
    return WriteOutcome(path="", version=str(staged.get("version")), written=written, signatures=signatures, already_exported=True)


def _local_checkpoint(area: StagingArea, checkpoint: CheckpointArtifact, folder: str, *, index_only: bool = False) -> str:
    """A prefix TensorFlow reads from local disk: the pinned checkpoint itself, or its files fetched
    through the scratch cache (hard links; each object downloaded once per worker), or with
    ``index_only`` just its ``.index`` (the data shards stay on the store: ``DeferredShards``)."""
    prefix = checkpoint.readable_prefix
    if scheme_of(prefix) == "file":
        return prefix
    storage = storage_for(prefix)
    try:
        if is_single_file(checkpoint):  # a Keras checkpoint: one file, fetched whole
            objects = single_file_objects(storage, checkpoint)
        else:
            objects = [o for o in checkpoint_objects(storage, prefix) if not index_only or o.uri.endswith(".index")]
        if not objects:
            raise ExportError(f"{checkpoint.label}: no files at {prefix} (its lease expired?); rerun discovery")
        area.cache.materialize(storage, {info.uri.rsplit("/", 1)[1]: info for info in objects}, folder)
    except StorageError as exc:
        raise ExportError(f"{checkpoint.label}: cannot fetch it from {prefix}: {exc}") from exc
    return os.path.join(folder, prefix.rstrip("/").rsplit("/", 1)[1])


def _version(params: ExportParams, scheme: str, area: StagingArea, step: int) -> str:
    name = params.strategy.name
    if scheme == "timestamp" and not params.force:
        recorded = _recorded_export(params.ledger, step, name)
        if recorded is not None and cleanup.is_staged(area, name, recorded):
            return recorded  # idempotent: the version this step already got
    base = area.strategy_uri(name) if area.local else area.scratch_path("export", name)
    return choose_version(base, scheme=scheme, global_step=step)


def _recorded_export(state: LedgerState, step: int, strategy: str) -> str | None:
    record = state.record(step) if hasattr(state, "record") else None
    exports = getattr(record, "exports", None) or {}
    export = exports.get(strategy)
    return getattr(export, "version", None)


def _retain(area: StagingArea, keep: int | None, params: ExportParams, version: str) -> None:
    state = params.ledger_source() if params.ledger_source is not None else params.ledger
    name = params.strategy.name
    cleanup.prune_strategy(
        area, name, keep=keep, protect={version, *_unpublished_versions(state, name)}, published=_published_versions(state, name)
    )


def _published_versions(state: LedgerState, strategy: str) -> set[str]:
    """Versions of this strategy the ledger records as published: their staged copies are not needed."""
    out = set()
    for record in (getattr(state, "checkpoints", None) or {}).values():
        pushed = (getattr(record, "publications", None) or {}).get(strategy)
        if pushed is not None and getattr(pushed, "version", None) is not None:
            out.add(str(pushed.version))
    return out


def _unpublished_versions(state: LedgerState, strategy: str) -> set[str]:
    """Versions this strategy exported that no publication has taken yet (read tolerantly)."""
    out = set()
    for record in (getattr(state, "checkpoints", None) or {}).values():
        exports = getattr(record, "exports", None) or {}
        publications = getattr(record, "publications", None) or {}
        if strategy in exports and strategy not in publications:
            version = getattr(exports[strategy], "version", None)
            if version is not None:
                out.add(str(version))
    return out
