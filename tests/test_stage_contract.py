"""One stage contract: a stage in this process and in another interpreter answer and fail the same way.

User code (a ``kind: custom`` export strategy from ``tests/support/contract``) prints lines that look
like a stage's answer to stdout, then either declines to export or fails at import with a ValueError, an
ExportflowError that is permanent or retryable, or an exception nobody expected. The operator must take
the answer from the result channel, never from stdout, and map each failure identically in both runtimes.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from components.artifacts import CheckpointArtifact, EvaluationArtifact
from tests.support.example_pipeline import PROJECT_ROOT, TrainedModel, example_config_dict, write_config

RUNTIMES = ("in_process", "external_python")


@pytest.fixture
def run_export(trained_model: TrainedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``run_export(module, runtime)``: the export task of a strategy whose target is in ``module``."""
    from plugins.operators import StageOperator

    monkeypatch.setenv("PYTHONPATH", str(PROJECT_ROOT))  # the other interpreter imports tests.support too
    prefix = str(trained_model.model_dir / "model.ckpt-300")
    checkpoint = CheckpointArtifact(uri=prefix, model_name="example", step=300)
    evaluation = EvaluationArtifact(uri=prefix, checkpoint=checkpoint, metrics={"auc": 0.8}, blessed=True)

    def run(module: str, runtime: str, python: str = sys.executable):
        strategy = {"name": "user", "kind": "custom", "params": {"target": f"tests.support.contract.{module}:strategy"}}
        airflow = {"runtime": runtime, "python": python} if runtime != "in_process" else {}
        data = example_config_dict(trained_model, tmp_path / runtime / "published", strategies=[strategy], airflow=airflow)
        path = write_config(data, tmp_path / runtime / "example.yaml")
        logger = logging.getLogger("test.export")  # caplog sees what the operator logs
        logged = type("StageOperator", (StageOperator,), {"log": property(lambda self: logger)})
        operator = logged(
            task_id="export", stage="export", config_path=str(path), strategy="user", evaluation=evaluation.to_dict()
        )
        return operator.execute({"params": {}})

    return run


def test_the_answer_comes_from_the_result_channel_not_from_what_user_code_prints(run_export, caplog) -> None:
    caplog.set_level(logging.INFO)
    for runtime in RUNTIMES:
        assert run_export("declines", runtime) is None, runtime  # declined; stdout's last line says otherwise
    forged = [r for r in caplog.records if r.name == "test.export" and '{"result": {"uri": "/forged"' in r.getMessage()]
    assert forged and all(r.levelno == logging.INFO for r in forged)  # the child's stdout, logged as output


@pytest.mark.parametrize(
    ("module", "raised", "message"),
    [
        ("value_error", "AirflowFailException", "ValueError: user code rejects its params"),
        ("permanent", "AirflowFailException", "UserConfigProblem: user code says a human must fix this"),
        ("retryable", "StageFailed", "UserServiceBusy: user code says try again later"),
        ("unexpected", "StageFailed", "RuntimeError: user code hit something nobody expected"),
    ],
)
def test_failures_map_the_same_in_both_runtimes(run_export, module: str, raised: str, message: str) -> None:
    seen = {}
    for runtime in RUNTIMES:
        with pytest.raises(Exception) as info:
            run_export(module, runtime)
        seen[runtime] = (type(info.value).__name__, str(info.value))
    assert seen["in_process"] == seen["external_python"] == (raised, message)


def test_an_interpreter_that_dies_without_an_outcome_is_retried(run_export) -> None:
    from plugins.operators import StageFailed

    with pytest.raises(StageFailed, match=r"stage export exited with 1 in /bin/false without an outcome"):
        run_export("declines", "external_python", python="/bin/false")


def test_a_pod_gets_its_request_as_an_argument_and_leaves_the_outcome_in_a_file(tmp_path: Path) -> None:
    """What a KubernetesPodOperator runs: exit status and result file say the same as in-process."""
    import subprocess

    from components.pipeline.envelope import EXIT_PERMANENT, StageRequest, encode_request, read_outcome

    result = tmp_path / "xcom" / "return.json"
    request = encode_request(StageRequest("train", str(tmp_path / "none.yaml")))
    process = subprocess.run(
        [sys.executable, "-m", "components.stage_entry", "--request", request, "--result", str(result)],
        capture_output=True, text=True, check=False, cwd=PROJECT_ROOT,
    )
    assert process.returncode == EXIT_PERMANENT, process.stderr
    outcome = read_outcome(str(result))
    assert outcome is not None and outcome.result is None
    assert (outcome.failure.error, outcome.failure.retryable) == ("ValueError", False)
    assert "unknown stage 'train'" in outcome.failure.message
    assert process.stdout == ""


def test_a_run_checkpoints_request_rebuilds_each_checkpoint_and_refuses_another_artifact() -> None:
    """The plain runner's one request for another interpreter: its list input is checked at the seam."""
    from components.pipeline.envelope import STAGES, StageRequest, call_stage

    checkpoints = [CheckpointArtifact(uri=f"/m/ckpt-{step:03d}.weights.h5", model_name="k", step=step) for step in (1, 2)]
    spec = STAGES["run_checkpoints"]
    rebuilt = spec.rebuilt({"checkpoints": [c.to_dict() for c in checkpoints]})
    assert rebuilt == {"checkpoints": checkpoints}
    spec.check_inputs(rebuilt)

    export = {"type": "Model", "uri": "/e/1"}  # an export where a checkpoint belongs: refused by its type name
    request = StageRequest("run_checkpoints", "/config/never/read.yaml", inputs={"checkpoints": [export]})
    with pytest.raises(ValueError, match="expected a Checkpoint artifact, got 'Model'"):
        call_stage(request)
