"""Run one export strategy for one evaluated checkpoint: decide, write to a temp folder, verify, rename.

Versions are the global step, so a rerun finds its own earlier export and skips it (unless forced),
and nothing half-written is ever left under a version name.
"""

from __future__ import annotations

import logging
import os
import shutil

from components.artifacts import EvaluationArtifact, ExportArtifact
from components.export.errors import ExportError
from components.export.savedmodel import signatures_by_tag, verify_loads
from components.export.spec import ExportParams
from components.export.strategies import StrategyContext, create_strategy
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
    ctx = StrategyContext(
        config=config,
        evaluation=evaluation,
        checkpoint_path=checkpoint.readable_prefix,
        ledger=params.ledger,
        is_final=params.is_final,
        work_dir=work_dir(config, f"export-{strategy_config.name}"),
    )
    decision = strategy.decide(ctx)
    if not decision.export:
        log.info("step %d not exported by %s: %s", checkpoint.step, strategy_config.name, decision.reason)
        return None
    version = str(checkpoint.step)
    base = staging_dir(config, strategy_config.name)
    final_dir = os.path.join(base, version)
    # A version folder only ever appears by rename after verification, so its presence means complete.
    already = os.path.isdir(final_dir) and not params.force
    if already:
        log.info("step %d already exported by %s at %s", checkpoint.step, strategy_config.name, final_dir)
        signatures = signatures_by_tag(final_dir)
    else:
        signatures = _write_atomically(strategy, ctx, base, final_dir)
    return ExportArtifact(
        uri=final_dir,
        model_name=config.name,
        strategy=strategy_config.name,
        version=version,
        step=checkpoint.step,
        checkpoint_uri=checkpoint.uri,
        tags=tuple(sorted(signatures)),
        signatures=signatures,
        metrics=dict(evaluation.metrics),
        already_exported=already,
    )


def _write_atomically(strategy, ctx: StrategyContext, base: str, final_dir: str) -> dict[str, tuple[str, ...]]:
    os.makedirs(base, exist_ok=True)
    tmp_dir = os.path.join(base, f".tmp-{os.path.basename(final_dir)}-{os.getpid()}")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    try:
        strategy.write(ctx, tmp_dir)
        signatures = verify_loads(tmp_dir)
    except ExportError:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    except Exception as exc:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise ExportError(f"strategy {strategy.name!r} failed: {type(exc).__name__}: {exc}") from exc
    shutil.rmtree(final_dir, ignore_errors=True)
    os.replace(tmp_dir, final_dir)
    return signatures
