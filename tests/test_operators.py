"""Operator seams that need no running Airflow: run options from params and events, the stage operator."""

from __future__ import annotations

import dataclasses
import sys

import pytest

from plugins.operators import STAGE_INPUTS, StageOperator
from plugins.params import refuse_unknown_params, run_options_from_params, steps_from_asset_events


@dataclasses.dataclass
class Event:
    extra: dict


def test_every_coalesced_event_is_taken_and_final_flags_kept() -> None:
    events = {
        "asset-a": [Event({"step": 100, "final": False}), Event({"step": 300, "final": True})],
        "asset-b": [Event({"step": 200}), Event({"step": 100}), Event({"nothing": 1}), Event({"step": "x"})],
    }
    assert steps_from_asset_events(events) == ((100, 200, 300), (300,))
    assert steps_from_asset_events({}) == ((), ())


def test_run_options_from_the_form() -> None:
    options = run_options_from_params(
        {"checkpoint": 200, "strategies": ["b"], "force": True, "dry_run": False, "max_checkpoints": 3}, ["a", "b"]
    )
    assert (options.checkpoint, options.strategies, options.force, options.dry_run, options.max_checkpoints) == (
        200, ("b",), True, False, 3
    )
    with pytest.raises(ValueError, match=r"unknown strategies \['c'\]; configured: \['a', 'b'\]"):
        run_options_from_params({"strategies": ["c"]}, ["a", "b"])


def test_trigger_conf_may_only_fill_the_form() -> None:
    refuse_unknown_params({"checkpoint": None, "force": False})
    with pytest.raises(ValueError, match=r"\['destination', 'model_dir'\] that this DAG does not accept"):
        refuse_unknown_params({"destination": "/etc", "model_dir": "/", "force": True})


def test_one_operator_takes_each_stages_inputs_and_names_the_mapped_task() -> None:
    checkpoint = {"uri": "/m/model.ckpt-300", "model_name": "m", "step": 300}
    evaluation = {"checkpoint": checkpoint, "uri": "/m/model.ckpt-300"}
    export = {"strategy": "best", "step": 300}
    cases = {
        "discover": ({}, ""),
        "evaluate": ({"checkpoint": checkpoint}, "step 300"),
        "export": ({"strategy": "best", "evaluation": evaluation}, "best @ step 300"),
        "warmup": ({"export": export}, "best @ step 300"),
        "publish": ({"export": None}, "nothing exported"),
    }
    assert set(cases) == set(STAGE_INPUTS)
    for stage, (inputs, label) in cases.items():
        operator = StageOperator(task_id=stage, stage=stage, config_path="/c.yaml", **inputs)
        assert operator.inputs == {name: inputs.get(name) for name in STAGE_INPUTS[stage]}
        assert operator.label() == label


def test_a_stage_with_nothing_exported_upstream_does_nothing() -> None:
    context: dict = {"params": {}}
    assert StageOperator(task_id="publish", stage="publish", config_path="/nowhere.yaml", export=None).execute(context) is None
    assert context["exportflow_label"] == "nothing exported"


def test_an_unknown_stage_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown stage 'train'; stages: \['discover', 'evaluate', 'export'"):
        StageOperator(task_id="t", stage="train", config_path="/c.yaml")


def test_the_refusal_list_is_exactly_the_forms_fields() -> None:
    """A conf filling every field the form shows passes; the refusal names the form's fields as the allowed ones."""
    from plugins.params import build_params

    form = build_params(["a", "b"])
    refuse_unknown_params(dict.fromkeys(form))
    with pytest.raises(ValueError) as caught:
        refuse_unknown_params({**dict.fromkeys(form), "model_fn": "os:system"})
    assert f"fields ['model_fn'] that this DAG does not accept; allowed: {sorted(form)}." in str(caught.value)


STOPPED_CHILD = """\
import os, signal, sys
def on_term(signum, frame):  # the stage's own SIGTERM handling: clean up, report, exit
    open(os.environ["TERMINATED_MARK"], "w").close()
    sys.exit(4)
signal.signal(signal.SIGTERM, on_term)
with open(os.environ["READY_FIFO"], "w") as ready:
    ready.write("ready")
signal.pause()
"""


class TaskTerminated(BaseException):
    """What Airflow's task runner raises in the task when its process gets SIGTERM."""


def test_a_stopped_task_sends_its_external_stage_sigterm_and_waits_for_it(tmp_path, monkeypatch) -> None:
    """Stopping the task (SIGTERM, a timeout) must reach the stage in the child as SIGTERM, so it releases its
    leases, instead of leaving it running or killing it outright."""
    import os
    import signal
    import stat
    import threading

    from components.pipeline.envelope import StageRequest

    script = tmp_path / "child.py"
    script.write_text(STOPPED_CHILD)
    python = tmp_path / "python"  # stands in for the runtime's interpreter: `python -m ... --result FILE`
    python.write_text(f"#!/bin/sh\nexec {sys.executable} {script} \"$@\"\n")
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    fifo = tmp_path / "ready"
    os.mkfifo(fifo)
    monkeypatch.setenv("READY_FIFO", str(fifo))
    mark = tmp_path / "child.terminated"
    monkeypatch.setenv("TERMINATED_MARK", str(mark))

    def stop_when_ready() -> None:
        with open(fifo) as ready:  # blocks until the child is up and waiting
            assert ready.read() == "ready"
        os.kill(os.getpid(), signal.SIGTERM)

    def on_term(signum: int, frame: object) -> None:
        raise TaskTerminated("SIGTERM")

    previous = signal.signal(signal.SIGTERM, on_term)
    stopper = threading.Thread(target=stop_when_ready)
    stopper.start()
    operator = StageOperator(task_id="evaluate", stage="evaluate", config_path="/c.yaml", checkpoint={})
    try:
        with pytest.raises(TaskTerminated):
            operator._call_external(str(python), StageRequest("evaluate", "/c.yaml"), None)
    finally:
        signal.signal(signal.SIGTERM, previous)
        stopper.join()
    assert mark.exists()  # the child got SIGTERM and ran its cleanup before the task gave up
