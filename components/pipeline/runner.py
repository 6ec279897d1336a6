"""The plain runner: the stages in their reference order, without Airflow.

The CLI, tests and benchmarks use it; Airflow's DAG runs the same stage functions one per task. A model
whose stages need another interpreter (Keras: TF 2.21) runs ``run_checkpoints`` there, one process per run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import signal
import threading
from collections.abc import Iterator, Sequence
from typing import Any

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

    def to_dict(self) -> dict[str, Any]:
        """As the envelope's ``run_checkpoints`` returns it: each artifact as XCom carries one."""
        return {f.name: [a.to_dict() for a in getattr(self, f.name)] for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunReport:
        return cls(
            tuple(EvaluationArtifact.from_dict(d) for d in data["evaluations"]),
            tuple(ExportArtifact.from_dict(d) for d in data["exports"]),
            tuple(PushedModelArtifact.from_dict(d) for d in data["published"]),
        )


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
    return run_checkpoints(config, options, checkpoints)


def run_checkpoints(
    config: PipelineConfig, options: RunOptions, checkpoints: Sequence[CheckpointArtifact]
) -> RunReport:
    """Every stage after discovery for ``checkpoints``, in this interpreter: evaluate, then for each
    selected strategy export, warmup and publish. A checkpoint that cannot be read fails alone: the
    others are still published, then its error is raised. The caller holds (and releases) the leases."""
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
    """``run_checkpoints`` in ``airflow.python``, one interpreter for the whole run (Keras: TF 2.21), through
    the envelope's ``run_checkpoints`` request; discovery stayed in this process, which releases the leases.

    Its failure comes back as ``ExternalStageFailed`` carrying the child's error (an unreadable
    checkpoint's ``CorruptCheckpoint`` after the others were published, as ``run_checkpoints`` raises it)."""
    from components.pipeline.contract import StageRequest
    from components.pipeline.external import call_external

    if not checkpoints:  # nothing to run: no interpreter to start
        return RunReport()
    request = StageRequest(
        "run_checkpoints", config.source, options, {"checkpoints": [c.to_dict() for c in checkpoints]}
    )
    return RunReport.from_dict(call_external(config.airflow.python or "", request))


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
