"""The plain runner: the stages in their reference order, without Airflow.

The CLI, tests and benchmarks use it; Airflow's DAG runs the same stage functions one per task.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import signal
import threading
from collections.abc import Iterator

from components.artifacts import CheckpointArtifact, EvaluationArtifact, ExportArtifact, PushedModelArtifact
from components.config.schema import PipelineConfig
from components.discovery import lease
from components.discovery.errors import CheckpointError
from components.pipeline.options import RunOptions, selected_strategies
from components.pipeline.stages import (
    ExportDeclined,
    discover_stage,
    evaluate_stage,
    export_stage,
    publish_stage,
    warmup_stage,
)

log = logging.getLogger(__name__)


class RunTerminated(BaseException):
    """SIGTERM reached a plain run. Raised where the run is, like Airflow's ``AirflowTaskTerminated``,
    so every stage's cleanup (its leases) runs on the way out. A BaseException: no ``except Exception``
    in user code or ours swallows it."""


@dataclasses.dataclass(frozen=True)
class RunReport:
    evaluations: tuple[EvaluationArtifact, ...] = ()
    exports: tuple[ExportArtifact, ...] = ()
    published: tuple[PushedModelArtifact, ...] = ()


def run_pipeline(config: PipelineConfig, options: RunOptions | None = None) -> RunReport:
    """Every stage for every new checkpoint. A checkpoint that cannot be read fails alone (as its own
    mapped tasks do in Airflow): the others are still published, then its error is raised."""
    options = options or RunOptions()
    checkpoints: list[CheckpointArtifact] = []
    with sigterm_raises():
        try:
            checkpoints = discover_stage(config, options, owner=lease.LeaseOwner.this_process(options.run_id))
            return _run(config, options, checkpoints)
        finally:  # the run is over, failed or not: nothing reads its checkpoints again
            for checkpoint in checkpoints:
                lease.release(checkpoint)


def _run(config: PipelineConfig, options: RunOptions, checkpoints: list[CheckpointArtifact]) -> RunReport:
    if config.framework == "keras":
        return _run_external(config, options, checkpoints)
    strategies = selected_strategies(config, options)
    evaluations, exports, published = [], [], []
    unreadable: list[CheckpointError] = []
    for checkpoint in checkpoints:
        try:
            evaluation = evaluate_stage(config, checkpoint)
        except CheckpointError as exc:
            log.error("%s", exc)
            unreadable.append(exc)
            continue
        evaluations.append(evaluation)
        for strategy in strategies:
            exported = export_stage(config, strategy.name, evaluation, options)
            if isinstance(exported, ExportDeclined):
                continue
            exported = warmup_stage(config, exported)
            exports.append(exported)
            published.append(publish_stage(config, exported, options))
    if unreadable:
        raise unreadable[0]
    return RunReport(tuple(evaluations), tuple(exports), tuple(published))


def _run_external(config: PipelineConfig, options: RunOptions, checkpoints: list[CheckpointArtifact]) -> RunReport:
    """The TF stages of a model whose framework needs another runtime (Keras: TF 2.21), each through the
    envelope in ``airflow.python``, in the same order as ``_run``; discovery stayed in this process."""
    from components.pipeline.contract import StageRequest
    from components.pipeline.external import ExternalStageFailed, call_external

    python = config.airflow.python or ""

    def call(stage: str, **inputs: object) -> object:
        return call_external(python, StageRequest(stage, config.source, options, dict(inputs)))

    evaluations, exports, published = [], [], []
    unreadable: list[ExternalStageFailed] = []
    for checkpoint in checkpoints:
        try:
            evaluation = EvaluationArtifact.from_dict(call("evaluate", checkpoint=checkpoint.to_dict()))
        except ExternalStageFailed as exc:
            if exc.failure.error not in CHECKPOINT_ERRORS:
                raise
            log.error("%s", exc)  # it fails alone, as in _run
            unreadable.append(exc)
            continue
        evaluations.append(evaluation)
        for strategy in selected_strategies(config, options):
            exported = call("export", strategy=strategy.name, evaluation=evaluation.to_dict())
            if exported is None:  # declined: the envelope says so with None, as XCom does
                continue
            warmed = ExportArtifact.from_dict(call("warmup", export=exported))
            exports.append(warmed)
            published.append(PushedModelArtifact.from_dict(call("publish", export=warmed.to_dict())))
    if unreadable:
        raise unreadable[0]
    return RunReport(tuple(evaluations), tuple(exports), tuple(published))


# ``CheckpointError`` and its subclasses by name, as a failure from another interpreter names them
CHECKPOINT_ERRORS = frozenset(
    {"CheckpointError", "IncompleteCheckpoint", "CorruptCheckpoint", "CheckpointUnreadable", "CheckpointVanished"}
)


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """While the run lasts, the first SIGTERM raises ``RunTerminated`` in it; later ones wait for the
    cleanup (SIGKILL still ends the process, and the next discovery reaps what it leaves)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread; the caller's handling stands
        return
    terminated = False

    def on_sigterm(signum: int, frame: object) -> None:
        nonlocal terminated
        if not terminated:
            terminated = True
            raise RunTerminated("SIGTERM: the run stops here and releases its leases")

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
