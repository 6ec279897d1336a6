"""Run one stage from JSON in, JSON out: the single entry point every Airflow task goes through.

In-process tasks call ``call_stage`` directly. With ``airflow.runtime: external_python`` the task runs
``<python> -m components.stage_entry`` instead, in a separate interpreter that receives only this
request on stdin and answers on stdout — the same contract a Kubernetes pod would use.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable
from typing import Any

from components.artifacts import from_jsonable, to_jsonable
from components.component import ComponentSpec
from components.config import load_config
from components.config.schema import PipelineConfig
from components.discovery import spec as discovery_spec
from components.errors import ExportflowError
from components.evaluation import spec as evaluation_spec
from components.export import spec as export_spec
from components.publish import spec as publish_spec
from components.stages import (
    RunOptions,
    discover_stage,
    evaluate_stage,
    export_stage,
    publish_stage,
    warmup_stage,
)
from components.warmup import spec as warmup_spec


@dataclasses.dataclass(frozen=True)
class StageRequest:
    stage: str
    config_path: str
    options: RunOptions = dataclasses.field(default_factory=RunOptions)
    inputs: dict[str, Any] = dataclasses.field(default_factory=dict)


def _discover(config: PipelineConfig, options: RunOptions, inputs: dict[str, Any]) -> Any:
    return [c.to_dict() for c in discover_stage(config, options)]


def _evaluate(config: PipelineConfig, options: RunOptions, inputs: dict[str, Any]) -> Any:
    return evaluate_stage(config, inputs["checkpoint"]).to_dict()


def _export(config: PipelineConfig, options: RunOptions, inputs: dict[str, Any]) -> Any:
    exported = export_stage(config, inputs["strategy"], inputs["evaluation"], options)
    return exported.to_dict() if exported is not None else None


def _warmup(config: PipelineConfig, options: RunOptions, inputs: dict[str, Any]) -> Any:
    return warmup_stage(config, inputs["export"]).to_dict()


def _publish(config: PipelineConfig, options: RunOptions, inputs: dict[str, Any]) -> Any:
    return publish_stage(config, inputs["export"], options).to_dict()


Runner = Callable[[PipelineConfig, RunOptions, dict[str, Any]], Any]
# Each stage's spec says which inputs are artifacts and of what type: XCom's JSON is rebuilt and
# checked against it here, at the one seam every task passes through.
STAGES: dict[str, tuple[ComponentSpec, Runner]] = {
    "discover": (discovery_spec.SPEC, _discover),
    "evaluate": (evaluation_spec.SPEC, _evaluate),
    "export": (export_spec.SPEC, _export),
    "warmup": (warmup_spec.SPEC, _warmup),
    "publish": (publish_spec.SPEC, _publish),
}


def call_stage(request: StageRequest) -> Any:
    if request.stage not in STAGES:
        raise ValueError(f"unknown stage {request.stage!r}; stages: {sorted(STAGES)}")
    spec, run = STAGES[request.stage]
    inputs = {
        name: spec.inputs[name].from_dict(value) if name in spec.inputs else value
        for name, value in request.inputs.items()
    }
    spec.check_inputs(inputs)
    return run(load_config(request.config_path), request.options, inputs)


def encode_request(request: StageRequest) -> str:
    return json.dumps(to_jsonable(request))


def decode_request(text: str) -> StageRequest:
    return from_jsonable(StageRequest, json.loads(text))


def main() -> int:
    """stdin: a StageRequest as JSON. stdout: ``{"result": ...}`` or ``{"error": ..., "retryable": ...}``."""
    import logging

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    from components.runner import RunTerminated, sigterm_raises

    request = decode_request(sys.stdin.read())
    try:
        with sigterm_raises():  # a pod being deleted gets SIGTERM: the stage releases its leases first
            result = call_stage(request)
    except ExportflowError as exc:
        print(json.dumps({"error": type(exc).__name__, "message": str(exc), "retryable": exc.retryable}))
        return 3
    except RunTerminated as exc:
        print(json.dumps({"error": type(exc).__name__, "message": str(exc), "retryable": True}))
        return 3
    print(json.dumps({"result": result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
