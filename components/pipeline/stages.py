"""The five stages that move a checkpoint to serving, each taking and returning artifacts and keeping the
ledger current (the sixth, report, is ``components.pipeline.report``).

These are the seams the orchestrators share: the plain runner calls them in a loop, each Airflow task
calls exactly one of them through the envelope with artifacts rebuilt from XCom. Config and run options
are passed in; the ledger is read and written here so a task that runs alone (a retry, another worker)
sees the truth. Each stage's docstring says what it writes and which lease holds it releases.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from components.artifacts import CheckpointArtifact, EvaluationArtifact, ExportArtifact, PushedModelArtifact
from components.config.schema import PipelineConfig
from components.discovery import lease
from components.discovery.errors import DiscoveryError
from components.discovery.executor import discover
from components.discovery.spec import DiscoveryParams
from components.errors import ExportflowError
from components.evaluation.digest import config_digest
from components.evaluation.executor import evaluate
from components.evaluation.spec import EvaluationParams
from components.export.executor import export
from components.export.spec import ExportParams
from components.ledger import Ledger
from components.ledger.records import (
    baseline,
    ranking_rule,
    record_declined,
    record_evaluation,
    record_export,
    record_publication,
    stamp_publication,
)
from components.model_storage import ModelStorage
from components.paths import work_dir
from components.pipeline.options import RunOptions, selected_strategies, strategy_named
from components.preflight import preflight
from components.publish.errors import PublishError
from components.publish.executor import publish
from components.publish.spec import PublishParams
from components.serving.protection import retire_old_versions
from components.serving.publication import label_fresh_version
from components.staging.release import release_staged, release_unpublished
from components.storage import CredentialsSource
from components.warmup.executor import inject_warmup
from components.warmup.spec import WarmupParams

log = logging.getLogger(__name__)
_T = TypeVar("_T")


def ledger_of(config: PipelineConfig, credentials: CredentialsSource | None = None) -> Ledger:
    """The model's ledger, built by the storage factory (``credentials``: the orchestrator's, if any)."""
    return ModelStorage(config, credentials).ledger()


def discovery_params(config: PipelineConfig, options: RunOptions | None = None) -> DiscoveryParams:
    """What discovery takes for this config and run: policy and cap, the chosen step, the config digest."""
    options = options or RunOptions()
    discovery = config.discovery
    return DiscoveryParams(
        model_name=config.name,
        model_dir=config.model_dir,
        policy=discovery.policy,
        every_n_steps=discovery.every_n_steps,
        max_per_run=options.max_checkpoints or discovery.max_per_run,
        only_step=options.checkpoint,
        include_handled=options.force,
        config_digest=config_digest(config),
        strategies=tuple(s.name for s in config.strategies),
        checkpoint_pattern=config.keras.checkpoints if config.framework == "keras" and config.keras else None,
    )


def pending_steps(config: PipelineConfig, credentials: CredentialsSource | None = None) -> list[int]:
    """Steps a default run of ``config`` would take now, pinning nothing: what the sensor polls for.

    Raises ``ModelDirError`` while the model dir is missing or empty.
    """
    storage = ModelStorage(config, credentials)
    state = storage.ledger().load()
    return [c.step for c in discover(discovery_params(config), state, storage.for_uri(config.model_dir))]


def discover_stage(
    config: PipelineConfig, options: RunOptions, *, owner: lease.LeaseOwner | None = None
) -> list[CheckpointArtifact]:
    """New checkpoints, pinned for the run.

    Writes a lease per checkpoint with one hold per selected strategy (each released by that strategy's
    publish, or earlier where its part of the run ends) and reaps stale leases; writes nothing else.
    ``owner``: the process when the whole run lives in it (the plain runner), so a lease it strands when
    killed is reaped as soon as the process is gone."""
    preflight(config)  # code and locations usable, before any checkpoint is pinned or anything written
    root, ttl = lease.lease_settings(config)
    lease.check_lease_root(config, root)
    params = discovery_params(config, options)
    state = ledger_of(config).load()
    checkpoints = discover(params, state)
    if options.steps is not None:
        # Asset-triggered: Airflow links to a run only the events that arrived before it was queued,
        # so events are hints, not the list: every new checkpoint is taken by policy (above), plus
        # each step an event names even where the policy would skip it.
        seen = {c.step for c in checkpoints}
        handled = set() if options.force else state.handled_steps(params.config_digest, params.strategies)
        for step in sorted(set(options.steps) - handled - seen):
            try:
                checkpoints += discover(dataclasses.replace(params, only_step=step), state)
            except DiscoveryError as exc:  # e.g. the trainer's retention deleted it since the event
                log.warning("skipping step %d named by an asset event: %s", step, exc)
        checkpoints.sort(key=lambda c: c.step)
    checkpoints = [
        dataclasses.replace(c, final=True) if c.step in options.final_steps else c for c in checkpoints
    ]
    # Pinned for the run: one hold per strategy, each released by that strategy's publish. An
    # orchestrator that runs one run at a time lets discovery reap every other orchestrated run's lease.
    holders = [s.name for s in selected_strategies(config, options)]
    exclusive = options.run_id is not None and config.airflow.max_active_runs == 1
    owner = owner or lease.LeaseOwner.of_run(options.run_id)
    checkpoints = lease.pin_all(checkpoints, root, holders, ttl, owner=owner, exclusive_run=exclusive)
    if not checkpoints:
        log.info("%s: no new checkpoints in %s", config.name, config.model_dir)
    return checkpoints


def evaluate_stage(config: PipelineConfig, checkpoint: CheckpointArtifact) -> EvaluationArtifact:
    """The checkpoint's metrics and blessing against the thresholds.

    Writes the evaluation to the ledger (a rerun reuses the recorded metrics) and scratch files under the
    work dir. Releases the checkpoint's whole lease if evaluation fails or does not bless it."""
    ledger = ledger_of(config)
    state = ledger.load()
    record = state.record(checkpoint.step)
    params = EvaluationParams(config, work_dir(config, "eval"), metrics_fn=_keras_metrics_fn(config))
    previous = record.evaluation if record else None  # a restarted run reuses its metrics
    # A failed evaluation ends this checkpoint's part of the run: nothing downstream runs for it, so its
    # whole lease goes. A retry pins it again (holds for every configured strategy: in Airflow each
    # mapped export releases its own, selected or not).
    holders = [s.name for s in config.strategies]
    with lease.holding(checkpoint, holders, repin=True, whole_lease=True):
        evaluation = evaluate(params, checkpoint, baseline(state, config.evaluation.thresholds), previous)
        record_evaluation(ledger, evaluation)
    if not evaluation.blessed:
        lease.release(checkpoint)  # no strategy exports it: nothing reads it again
    return evaluation


def _keras_metrics_fn(config: PipelineConfig) -> Callable[..., dict[str, float]] | None:
    """A Keras model is measured with ``model.evaluate`` (components.keras), an Estimator as before."""
    if config.framework != "keras":
        return None
    from components.keras.evaluate import keras_metrics

    return keras_metrics


def _keras_strategy_fn(config: PipelineConfig) -> Callable[[Any], Any] | None:
    """A Keras model's strategies decide as configured and write with keras.export.ExportArchive."""
    if config.framework != "keras":
        return None
    from components.keras.export import keras_strategy

    return keras_strategy


def _drops_hold_on_failure(stage: Callable[..., _T]) -> Callable[..., _T]:
    """For the stages after export (``stage(config, exported, ...)``): if the stage raises anything,
    the strategy's hold on the export's checkpoint goes, as its publish will not run. The lease is the
    one the ledger's evaluation names, read only then."""

    @functools.wraps(stage)
    def run(config: PipelineConfig, exported: ExportArtifact, *args: Any, **kwargs: Any) -> _T:
        try:
            return stage(config, exported, *args, **kwargs)
        except BaseException:
            _release_hold(config, exported)
            raise

    return run


def _release_hold(config: PipelineConfig, exported: ExportArtifact) -> None:
    try:
        record = ledger_of(config).load().record(exported.step)
    except ExportflowError as exc:  # the stage's own error is what to report; stale cleanup reaps it later
        log.warning("cannot read the ledger to release the lease of step %d: %s", exported.step, exc)
        return
    lease.release(record.evaluation.checkpoint if record and record.evaluation else None, exported.strategy)


@dataclasses.dataclass(frozen=True)
class ExportDeclined:
    """A strategy's export did not happen, and why. Carried where a ``None`` would say nothing; the
    envelope still answers ``None`` (XCom's "nothing exported") so warmup and publish skip it."""

    strategy: str
    step: int
    reason: str


def export_stage(
    config: PipelineConfig, strategy_name: str, evaluation: EvaluationArtifact, options: RunOptions
) -> ExportArtifact | ExportDeclined:
    """The strategy's SavedModel(s) for the evaluated checkpoint, or why it declined.

    Writes the export (staged by the strategy's kind) and records it in the ledger; a blessed checkpoint
    the strategy declines is recorded as declined with its reason, so discovery counts it as handled.
    Releases the strategy's hold on the checkpoint when it declines (its publish will never run)."""
    step = evaluation.checkpoint.step
    if strategy_name not in {s.name for s in selected_strategies(config, options)}:
        log.info("strategy %s not selected for this run", strategy_name)
        lease.release(evaluation.checkpoint, holder=strategy_name)  # a retried evaluate pins for all
        return ExportDeclined(strategy_name, step, "not selected for this run")
    ledger = ledger_of(config)
    params = ExportParams(
        config,
        strategy_named(config, strategy_name),
        ledger.load(),
        force=options.force,
        is_final=evaluation.checkpoint.final,
        ledger_source=ledger.load,
        adapt_strategy=_keras_strategy_fn(config),
    )
    with lease.holding(evaluation.checkpoint, [strategy_name], repin=evaluation.blessed):
        exported = export(params, evaluation)
    if exported is None:  # declined (not blessed, not final, not better): its publish will never run
        lease.release(evaluation.checkpoint, holder=strategy_name)
        if not evaluation.blessed:
            return ExportDeclined(strategy_name, step, evaluation.summary)
        declined = ExportDeclined(strategy_name, step, f"declined by strategy kind {params.strategy.kind!r}")
        record_declined(ledger, evaluation.checkpoint, strategy_name, declined.reason)
        return declined
    record_export(ledger, exported)
    return exported


@_drops_hold_on_failure
def warmup_stage(config: PipelineConfig, exported: ExportArtifact) -> ExportArtifact:
    """The export with its warmup records injected (``assets.extra``) into every SavedModel.

    Writes the warmup file into the export and the updated export to the ledger. On failure the
    strategy's hold on the checkpoint goes (its publish will not run)."""
    warmed = inject_warmup(WarmupParams(config), exported)
    record_export(ledger_of(config), warmed)
    return warmed


@_drops_hold_on_failure
def publish_stage(config: PipelineConfig, exported: ExportArtifact, options: RunOptions) -> PushedModelArtifact:
    """The export copied to the destination, verified, commit marker last (nothing written on a dry run).

    Then records the publication in the ledger (stamped with time and run), releases the staged copy,
    labels the fresh version for serving and retires old versions by retention. A dry run, or a refusal
    (a non-retryable publish error such as ``VersionConflict``), releases the staged copy too unless
    another run still holds the checkpoint for this strategy. Releases the strategy's hold on the
    checkpoint, whether it succeeds or fails."""
    ledger = ledger_of(config)
    record = ledger.load().record(exported.step)
    evaluation = record.evaluation if record else None
    strategy = strategy_named(config, exported.strategy)
    checkpoint = evaluation.checkpoint if evaluation else None
    try:
        pushed = publish(
            PublishParams(config, strategy, evaluation, dry_run=options.dry_run, force=options.force), exported
        )
    except PublishError as exc:
        if not exc.retryable:  # refused (VersionConflict, ...): no retry will read the staged copy
            release_unpublished(config, exported, checkpoint)
        raise
    if options.dry_run:
        release_unpublished(config, exported, checkpoint)  # a dry run's export is never published
    else:
        pushed = stamp_publication(pushed, record, options.run_id)
        record_publication(ledger, pushed, exported.checkpoint_uri, ranking_rule(config.evaluation.thresholds))
        # Published and recorded: its staged copy has done its job (a crash before this line leaves it to
        # the next export's staging retention, which removes versions the ledger shows as published).
        release_staged(config, exported)
        label_fresh_version(config, strategy.servable or config.name, pushed.version, run_id=options.run_id)
        retire_old_versions(config, strategy.servable or config.name)
    lease.release(checkpoint, holder=exported.strategy)
    return pushed

