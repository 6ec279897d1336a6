"""Run one export strategy for one evaluated checkpoint: decide, write to a temp folder, verify, rename.

Versions are the global step (or a timestamp when a strategy asks; a rerun then reuses the version the
ledger recorded), so a rerun finds its own earlier export and skips it (unless forced), and nothing
half-written is ever left under a version name. Multi-graph exports (per-mode, distributed) stage as one
folder ``<version>/<graph>/`` with ``export_set.json``, renamed in one step. After each export the shared
retention helper removes crashed temp folders and applies the strategy's ``exports_to_keep`` to the
staging folder, never removing a version the ledger shows as exported but not yet published.
"""

from __future__ import annotations

import logging
import os

from components.artifacts import EvaluationArtifact, ExportArtifact
from components.export.retention import apply_retention
from components.export.spec import ExportParams
from components.export.strategies import StrategyContext, create_strategy
from components.export.writing import choose_version, write_version
from components.ledger import LedgerState
from components.paths import staging_dir, work_dir

log = logging.getLogger(__name__)


def export(params: ExportParams, evaluation: EvaluationArtifact) -> ExportArtifact | None:
    """The export artifact, or None when the strategy declines (not blessed, not its turn)."""
    config, strategy_config = params.config, params.strategy
    checkpoint = evaluation.checkpoint
    if not evaluation.blessed:
        log.info("step %d not exported by %s: %s", checkpoint.step, strategy_config.name, evaluation.summary)
        return None
    strategy = create_strategy(strategy_config.kind, strategy_config.name, strategy_config.params)
    base = staging_dir(config, strategy_config.name)
    version = _version(params, strategy.version_scheme, base, checkpoint.step)
    ctx = StrategyContext(
        config=config,
        evaluation=evaluation,
        checkpoint_path=checkpoint.readable_prefix,
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
    outcome = write_version(
        base,
        version,
        lambda out_dir: strategy.write(ctx, out_dir),
        verify=strategy.verify,
        force=params.force,
        label=f"strategy {strategy_config.name!r}",
    )
    if outcome is None:
        return None
    _retain(base, strategy.exports_to_keep, params, version)
    written = outcome.written
    return ExportArtifact(
        uri=outcome.path,
        model_name=config.name,
        strategy=strategy_config.name,
        version=version,
        step=checkpoint.step,
        checkpoint_uri=checkpoint.uri,
        tags=tuple(sorted(outcome.signatures)),
        signatures=outcome.signatures,
        metrics=dict(evaluation.metrics),
        already_exported=outcome.already_exported,
        graphs={name: os.path.join(outcome.path, rel) for name, rel in written.graphs.items()},
        layout=written.layout,
        variables=written.variables,
    )


def _version(params: ExportParams, scheme: str, base: str, step: int) -> str:
    if scheme == "timestamp" and not params.force:
        recorded = _recorded_export(params.ledger, step, params.strategy.name)
        if recorded is not None and os.path.isdir(os.path.join(base, recorded)):
            return recorded  # idempotent: the version this step already got
    return choose_version(base, scheme=scheme, global_step=step)


def _recorded_export(state: LedgerState, step: int, strategy: str) -> str | None:
    record = state.record(step) if hasattr(state, "record") else None
    exports = getattr(record, "exports", None) or {}
    export = exports.get(strategy)
    return getattr(export, "version", None)


def _retain(base: str, keep: int | None, params: ExportParams, version: str) -> None:
    state = params.ledger_source() if params.ledger_source is not None else params.ledger
    apply_retention(base, keep, protect={version, *_unpublished_versions(state, params.strategy.name)})


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
