"""The remote envelope: run one stage from a JSON request, the single entry point every Airflow task
goes through (the plain runner calls the stages directly, or, for a model whose stages need another
interpreter, sends that interpreter one ``run_checkpoints`` request: every stage after discovery).

One contract in every runtime:

* in-process: the operator calls ``call_stage`` (with the model's credentials) and maps a failure
  through ``StageFailure.of``;
* another interpreter (``airflow.runtime: external_python``): ``<python> -m components.stage_entry
  --result <file>`` reads the request on stdin and writes its ``StageOutcome`` to ``<file>``. Its stdout
  and stderr are logs only (model code may print anything there), never the answer;
* a Kubernetes pod: the same command with ``--request '<request JSON>' --result
  /airflow/xcom/return.json``, the file KubernetesPodOperator's XCom sidecar reads.

A failure maps one way, ``StageFailure.of``: an ``ExportflowError`` keeps its ``retryable``; a
``ValueError`` (an invalid request or run option) is permanent; anything else may be transient and is
retryable. The exit status says the same: 0 done, 3 permanent failure, 4 retryable failure; any other
status is a crash, retryable.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from components.artifacts import CheckpointArtifact, EvaluationArtifact, ExportArtifact
from components.config import load_config
from components.config.schema import PipelineConfig
from components.model_storage import ModelStorage
from components.pipeline.contract import (  # the contract's types, here where callers have always found them
    StageFailure,
    StageOutcome,
    StageRequest,
    decode_request,
    encode_request,
    read_outcome,
    write_outcome,
)
from components.pipeline.options import RunOptions
from components.pipeline.spec import StageSpec
from components.pipeline.stages import (
    ExportDeclined,
    discover_stage,
    evaluate_stage,
    export_stage,
    publish_stage,
    warmup_stage,
)
from components.storage import CredentialsSource

log = logging.getLogger(__name__)
EXIT_PERMANENT = 3
EXIT_RETRYABLE = 4
__all__ = [
    "STAGES", "StageFailure", "StageOutcome", "StageRequest", "call_stage", "decode_request", "encode_request",
    "exit_status", "main", "read_outcome", "run_request", "write_outcome",
]


def _discover(config: PipelineConfig, options: RunOptions, inputs: dict[str, Any]) -> Any:
    return [c.to_dict() for c in discover_stage(config, options)]


def _evaluate(config: PipelineConfig, options: RunOptions, inputs: dict[str, Any]) -> Any:
    return evaluate_stage(config, inputs["checkpoint"]).to_dict()


def _export(config: PipelineConfig, options: RunOptions, inputs: dict[str, Any]) -> Any:
    exported = export_stage(config, inputs["strategy"], inputs["evaluation"], options)
    if isinstance(exported, ExportDeclined):
        log.info("%s exports nothing for step %d: %s", exported.strategy, exported.step, exported.reason)
        return None  # XCom's "nothing exported": warmup and publish skip it
    return exported.to_dict()


def _warmup(config: PipelineConfig, options: RunOptions, inputs: dict[str, Any]) -> Any:
    return warmup_stage(config, inputs["export"]).to_dict()


def _publish(config: PipelineConfig, options: RunOptions, inputs: dict[str, Any]) -> Any:
    return publish_stage(config, inputs["export"], options).to_dict()


def _run_checkpoints(config: PipelineConfig, options: RunOptions, inputs: dict[str, Any]) -> Any:
    """The plain runner's stages after discovery, for a model whose stages need another interpreter:
    one process for the whole run instead of one per stage (Airflow's DAG still runs one stage per task)."""
    from components.pipeline.runner import run_checkpoints

    return run_checkpoints(config, options, inputs["checkpoints"]).to_dict()


# The stages a request may name. Each lists its artifact inputs: XCom's JSON is rebuilt and checked
# against them here, at the one seam every task passes through.
STAGES: dict[str, StageSpec] = {
    spec.name: spec
    for spec in (
        StageSpec("discover", {}, _discover),
        StageSpec("evaluate", {"checkpoint": CheckpointArtifact}, _evaluate),
        StageSpec("export", {"evaluation": EvaluationArtifact}, _export),
        StageSpec("warmup", {"export": ExportArtifact}, _warmup),
        StageSpec("publish", {"export": ExportArtifact}, _publish),
        StageSpec("run_checkpoints", {"checkpoints": CheckpointArtifact}, _run_checkpoints),
    )
}


def call_stage(request: StageRequest, credentials: CredentialsSource | None = None) -> Any:
    """Run the stage with ``credentials`` (else the request's) applying to every storage it builds."""
    if request.stage not in STAGES:
        raise ValueError(f"unknown stage {request.stage!r}; stages: {sorted(STAGES)}")
    spec = STAGES[request.stage]
    inputs = spec.rebuilt(request.inputs)
    spec.check_inputs(inputs)
    config = load_config(request.config_path)
    if config.framework == "keras":  # before anything imports TensorFlow: the right runtime, or a clear error
        from components.keras.runtime import require_keras_runtime

        require_keras_runtime(config.name)
    with ModelStorage(config, credentials or request.credentials).installed():
        return spec.call(config, request.options, inputs)


def run_request(request_text: str) -> StageOutcome:
    """Decode and run one request; every failure becomes a ``StageFailure`` (traceback logged).

    SIGTERM (a pod being deleted, the operator stopping its child) raises ``RunTerminated`` inside the
    stage, so it releases its leases on the way out; the outcome is a retryable failure."""
    from components.pipeline.runner import RunTerminated, sigterm_raises

    try:
        with sigterm_raises():
            return StageOutcome(result=call_stage(decode_request(request_text)))
    except RunTerminated as exc:
        return StageOutcome(failure=StageFailure(type(exc).__name__, str(exc), retryable=True))
    except Exception as exc:
        log.exception("stage failed")
        return StageOutcome(failure=StageFailure.of(exc))


def exit_status(outcome: StageOutcome) -> int:
    if outcome.failure is None:
        return 0
    return EXIT_RETRYABLE if outcome.failure.retryable else EXIT_PERMANENT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.stage_entry", description=__doc__)
    parser.add_argument("--request", default="-", help="the StageRequest JSON; '-' (default) reads stdin")
    parser.add_argument("--result", required=True, help="file to write the StageOutcome JSON to")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    outcome = run_request(sys.stdin.read() if args.request == "-" else args.request)
    write_outcome(args.result, outcome)
    return exit_status(outcome)


if __name__ == "__main__":
    sys.exit(main())
