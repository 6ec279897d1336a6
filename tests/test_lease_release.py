"""Failed runs leave no lease in the trainer's folder: each failing case driven through the real stages
(or the plain runner in a child process), then the lease folder is listed — it must be empty.

Cases: an evaluation error, a retryable one (released, and the retry pins again at the same place), a
timeout raised by Airflow's task runner, a bad model_fn, a warmup that fails lint, a read-only
destination at publish, SIGTERM of a plain run, SIGKILL (reaped by the next discovery once the process
is provably gone), a lease of another run when runs are exclusive, and where leases may live.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from components.config import ConfigError
from components.discovery import lease
from components.evaluation.errors import EvalInputError, LoggedMetricsMissing
from components.pipeline.options import RunOptions
from components.pipeline.stages import (
    discover_stage,
    evaluate_stage,
    export_stage,
    ledger_of,
    publish_stage,
    warmup_stage,
)
from components.preflight import PreflightFailed
from components.warmup.errors import WarmupLintError
from tests.support.example_pipeline import (
    PROJECT_ROOT,
    TrainedModel,
    example_config,
    upload_folder,
    write_eval_summaries,
)

CHILD_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(PROJECT_ROOT)}


def lease_folder(config) -> list[str]:
    """Everything in the lease folder: after a failed run, nothing."""
    root, _ = lease.lease_settings(config)
    return sorted(os.listdir(root)) if os.path.isdir(root) else []


def raising_input_fn(path: str) -> None:
    raise ValueError("the eval data has a new schema")


class TimesOutOnce:
    """An eval input_fn during which Airflow's execution_timeout fires on the first attempt only."""

    attempts = 0

    @classmethod
    def input_fn(cls, path: str) -> Any:
        from airflow.sdk.exceptions import AirflowTaskTimeout

        from examples.model import eval_input_fn

        cls.attempts += 1
        if cls.attempts == 1:
            raise AirflowTaskTimeout("Timeout, PID: 1")  # what Airflow's timeout handler raises in the task
        return eval_input_fn(path)


timing_out_input_fn = TimesOutOnce.input_fn


def bad_model_fn(inputs):  # no `features` argument: tf.estimator refuses it
    raise AssertionError("never called")


def test_an_evaluation_error_releases_the_lease(model_copy, tmp_path: Path) -> None:
    config = example_config(
        model_copy, tmp_path, merge={"evaluation": {"input_fn": "test_lease_release:raising_input_fn"}}
    )
    (checkpoint,) = discover_stage(config, RunOptions(checkpoint=300))
    assert len(lease_folder(config)) == 1
    with pytest.raises(EvalInputError, match="the eval data has a new schema"):
        evaluate_stage(config, checkpoint)
    assert lease_folder(config) == []


def test_a_retryable_evaluation_error_releases_and_the_retry_pins_again(model_copy, tmp_path: Path) -> None:
    config = example_config(
        model_copy,
        tmp_path,
        merge={"evaluation": {"source": "logged", "input_fn": None, "thresholds": [{"metric": "loss", "upper": 10.0}]}},
    )
    (checkpoint,) = discover_stage(config, RunOptions(checkpoint=300))
    with pytest.raises(LoggedMetricsMissing) as err:
        evaluate_stage(config, checkpoint)
    assert err.value.retryable and lease_folder(config) == []

    write_eval_summaries(model_copy, [300])  # training evaluates the checkpoint later; the task retries
    evaluation = evaluate_stage(config, checkpoint)
    assert evaluation.blessed and lease.pinned_files_present(checkpoint)  # the same pinned_uri as before
    lease_dir = os.path.dirname(checkpoint.pinned_uri)
    assert sorted(n for n in os.listdir(lease_dir) if n.startswith("hold.")) == ["hold.all_modes"]

    exported = export_stage(config, "all_modes", evaluation, RunOptions())
    publish_stage(config, warmup_stage(config, exported), RunOptions())
    assert lease_folder(config) == []


def test_an_airflow_timeout_releases_and_the_retry_pins_again(model_copy, tmp_path: Path) -> None:
    """Airflow turns execution_timeout (and SIGTERM) into a BaseException raised inside the task."""
    from airflow.sdk.exceptions import AirflowTaskTimeout

    TimesOutOnce.attempts = 0
    config = example_config(
        model_copy, tmp_path, merge={"evaluation": {"input_fn": "test_lease_release:timing_out_input_fn"}}
    )
    (checkpoint,) = discover_stage(config, RunOptions(checkpoint=300))
    with pytest.raises(AirflowTaskTimeout):
        evaluate_stage(config, checkpoint)
    assert lease_folder(config) == []
    assert evaluate_stage(config, checkpoint).blessed  # the retry
    assert lease.pinned_files_present(checkpoint)


def test_on_gcs_a_timeout_releases_the_copies_and_the_retry_copies_again(
    trained_model, gcs_bucket: str, tmp_path: Path
) -> None:
    """The same on a GCS model_dir, where a lease is server-side copies in the trainer's bucket."""
    import dataclasses

    from airflow.sdk.exceptions import AirflowTaskTimeout

    from components.storage import storage_for

    model_dir = upload_folder(trained_model.model_dir, f"gs://{gcs_bucket}/models/example")
    model = dataclasses.replace(trained_model, model_dir=model_dir)
    TimesOutOnce.attempts = 0
    config = example_config(model, tmp_path, merge={"evaluation": {"input_fn": "test_lease_release:timing_out_input_fn"}})
    root, _ = lease.lease_settings(config)
    storage = storage_for(root)
    (checkpoint,) = discover_stage(config, RunOptions(checkpoint=200))
    assert lease.count_leases(root) == 1
    with pytest.raises(AirflowTaskTimeout):
        evaluate_stage(config, checkpoint)
    assert lease.count_leases(root) == 0 and list(storage.list(root)) == []
    evaluation = evaluate_stage(config, checkpoint)  # the retry copies the checkpoint again
    assert lease.pinned_files_present(checkpoint)
    lease.release(checkpoint, "all_modes")  # as its publish would
    assert evaluation.metrics and list(storage.list(root)) == []


@pytest.mark.parametrize(
    "model_fn, error",
    [
        ("test_lease_release:bad_model_fn", "must include features argument"),
        ("no_such_module:model_fn", "no_such_module"),
    ],
)
def test_a_bad_model_fn_releases_the_lease(model_copy, tmp_path: Path, model_fn: str, error: str) -> None:
    """Preflight refuses it before anything is pinned; a model_fn broken between discover and evaluate
    (code redeployed mid-run) fails evaluation, which still releases what discovery pinned."""
    bad = example_config(model_copy, tmp_path / "bad", model_fn=model_fn)
    with pytest.raises(PreflightFailed, match=f"model_fn: .*{model_fn}"):
        discover_stage(bad, RunOptions(checkpoint=300))
    assert lease_folder(bad) == []
    good = example_config(model_copy, tmp_path / "good")
    (checkpoint,) = discover_stage(good, RunOptions(checkpoint=300))
    assert len(lease_folder(good)) == 1
    with pytest.raises(Exception, match=error):
        evaluate_stage(bad, checkpoint)
    assert lease_folder(good) == []


MISSPELLED = {"instances": [{"dense": [0.5] * 8, "itemid": 3}]}


def test_a_warmup_failure_releases_the_lease(model_copy, tmp_path: Path) -> None:
    instances = tmp_path / "instances.json"
    instances.write_text(json.dumps(MISSPELLED))
    config = example_config(model_copy, tmp_path, merge={"warmup": {"source": "json", "path": str(instances)}})
    (checkpoint,) = discover_stage(config, RunOptions(checkpoint=300))
    evaluation = evaluate_stage(config, checkpoint)
    exported = export_stage(config, "all_modes", evaluation, RunOptions())
    with pytest.raises(WarmupLintError) as err:
        warmup_stage(config, exported)
    assert str(err.value) == (
        "warmup requests for the all_modes export of step 300 have 1 problem(s):\n"
        "  - record 0: predict_log.request.inputs['examples'][0].features['item_id']: "
        "expected int64_list with 1 value(s), found no such feature; "
        "the example's features ['itemid'] are not parsed by the model (misspelled?)"
    )
    assert lease_folder(config) == []


@pytest.mark.parametrize("mode", ["stages", "run"])
def test_a_read_only_destination_at_publish_releases_the_lease(model_copy, tmp_path: Path, mode: str) -> None:
    config = example_config(model_copy, tmp_path)
    servable = tmp_path / "published" / "example"
    servable.mkdir(parents=True)
    servable.chmod(0o555)  # the ledger and staging beside it stay writable: only publishing fails
    try:
        result = subprocess.run(
            [
                *without_read_override(),
                sys.executable,
                "-m",
                "tests.support.lease_child",
                mode,
                config.source,
            ],
            capture_output=True,
            text=True,
            env=CHILD_ENV,
            cwd=PROJECT_ROOT,
            check=False,
        )
    finally:
        servable.chmod(0o755)
    assert result.returncode == 3, result.stderr[-3000:]
    answer = json.loads(result.stdout.splitlines()[-1])
    assert "Permission denied" in answer["message"] and str(servable) in answer["message"], answer
    assert ledger_of(config).load().record(300).evaluation.blessed  # it failed at publish, not before
    assert lease_folder(config) == []


def without_read_override() -> list[str]:
    """As root, a setpriv prefix that drops CAP_DAC_OVERRIDE so file modes apply (test_evaluation_bad_inputs)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    assert setpriv, "running as root needs util-linux setpriv to drop CAP_DAC_OVERRIDE for this test"
    caps = "-dac_override,-dac_read_search"
    return [setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}"]


def run_child(mode: str, config_path: str, **kwargs: Any) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.lease_child", mode, config_path],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=CHILD_ENV,
        cwd=PROJECT_ROOT,
        **kwargs,
    )


class BlockedInEvaluation:
    """A config whose eval input_fn reports on a pipe that evaluation started, then blocks; and the child
    process that runs it, sent SIGTERM once (and only once) it is inside the evaluation."""

    def __init__(self, model: TrainedModel, tmp_path: Path) -> None:
        self.ready_read, self.ready_write = os.pipe()
        self.block_read, self.block_write = os.pipe()
        self.config = example_config(
            model,
            tmp_path,
            merge={"evaluation": {
                "input_fn": "tests.support.lease_child:blocking_input_fn",
                "input_fn_kwargs": {"ready_fd": self.ready_write, "block_fd": self.block_read},
            }},
        )

    def terminate(
        self, command: list[str], stdin: str = "", *, result: Path | None = None, status: int = 3
    ) -> dict[str, Any]:
        """Run ``command``; when evaluation has started, SIGTERM it; the failure it answers: the outcome in
        ``result`` when given (the stage contract), else its last stdout line as JSON."""
        child = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=CHILD_ENV,
            cwd=PROJECT_ROOT,
            pass_fds=(self.ready_write, self.block_read),
        )
        os.close(self.ready_write)
        os.close(self.block_read)
        try:
            child.stdin.write(stdin)
            child.stdin.close()
            child.stdin = None  # sent: communicate() only reads from here on
            readable, _, _ = select.select([self.ready_read], [], [], 600)  # started, or the child died
            assert readable and os.read(self.ready_read, 1) == b"r", child.communicate()[1][-3000:]
            assert len(lease_folder(self.config)) == 1  # pinned while it evaluates
            child.send_signal(signal.SIGTERM)
            out, err = child.communicate(timeout=600)
        finally:
            child.kill()
            os.close(self.ready_read)
            os.close(self.block_write)
        assert child.returncode == status, err[-3000:]
        if result is not None:
            return json.loads(result.read_text())["failure"]
        return json.loads(out.splitlines()[-1])


def test_sigterm_of_a_plain_run_releases_its_leases(model_copy, tmp_path: Path) -> None:
    blocked = BlockedInEvaluation(model_copy, tmp_path)
    command = [sys.executable, "-m", "tests.support.lease_child", "run", blocked.config.source]
    assert blocked.terminate(command) == {
        "error": "RunTerminated",
        "message": "SIGTERM: the run stops here and releases its leases",
    }
    assert lease_folder(blocked.config) == []


def test_sigterm_of_an_external_stage_releases_its_lease(model_copy, tmp_path: Path) -> None:
    """``airflow.runtime: external_python`` and Kubernetes pods run ``components.stage_entry``; deleting a
    pod sends its process SIGTERM."""
    from components.pipeline.envelope import EXIT_RETRYABLE, StageRequest, encode_request

    blocked = BlockedInEvaluation(model_copy, tmp_path)
    (checkpoint,) = discover_stage(blocked.config, RunOptions(checkpoint=300))  # the discover task
    request = StageRequest("evaluate", blocked.config.source, inputs={"checkpoint": checkpoint.to_dict()})
    result = tmp_path / "outcome.json"
    command = [sys.executable, "-m", "components.stage_entry", "--result", str(result)]
    answer = blocked.terminate(command, encode_request(request), result=result, status=EXIT_RETRYABLE)
    assert answer == {
        "error": "RunTerminated",
        "message": "SIGTERM: the run stops here and releases its leases",
        "retryable": True,
    }
    assert lease_folder(blocked.config) == []


def test_a_killed_runs_leases_are_reaped_by_the_next_discovery(model_copy, tmp_path: Path) -> None:
    config = example_config(model_copy, tmp_path)
    child = run_child("pin-then-die", config.source)
    _, err = child.communicate(timeout=600)
    assert child.returncode == -signal.SIGKILL, err[-3000:]
    stranded = lease_folder(config)
    assert len(stranded) == 1
    owner = json.loads(Path(lease.lease_settings(config)[0], stranded[0], lease.OWNER_FILE).read_text())
    assert owner["pid"] == child.pid and owner["host"] == lease.host_identity()

    (checkpoint,) = discover_stage(config, RunOptions(checkpoint=300))  # the next run: its process is gone
    assert lease_folder(config) == [os.path.basename(os.path.dirname(checkpoint.pinned_uri))]
    lease.release(checkpoint)
    assert lease_folder(config) == []


def test_leases_of_unknown_liveness_wait_for_the_ttl(model_copy, tmp_path: Path) -> None:
    """Another host's process, or another orchestrated run when runs may overlap: not provably unused."""
    config = example_config(model_copy, tmp_path, merge={"airflow": {"max_active_runs": 2}})
    root, ttl = lease.lease_settings(config)
    other_host = lease.LeaseOwner(run_id=None, host="elsewhere/boot/1", pid=1, pid_started="1")
    (checkpoint,) = discover_stage(config, RunOptions(checkpoint=100))
    lease.release(checkpoint)
    away = lease.pin(checkpoint, root, ["all_modes"], owner=other_host)
    other_run = lease.pin(checkpoint, root, ["all_modes"], owner=lease.LeaseOwner.of_run("scheduled__1"))
    names = sorted(os.path.basename(os.path.dirname(p.pinned_uri)) for p in (away, other_run))
    discover_stage(config, RunOptions(checkpoint=300, run_id="scheduled__2"))
    assert set(names) <= set(lease_folder(config))
    assert set(names) <= set(lease.clean_stale(root, ttl, now=time.time() + ttl + 1))  # the fallback


def test_one_run_at_a_time_reaps_every_other_runs_lease(model_copy, tmp_path: Path) -> None:
    config = example_config(model_copy, tmp_path)  # airflow.max_active_runs: 1 (the default)
    (earlier,) = discover_stage(config, RunOptions(checkpoint=100, run_id="scheduled__1"))
    (current,) = discover_stage(config, RunOptions(checkpoint=300, run_id="scheduled__2"))
    assert not lease.pinned_files_present(earlier)  # run 1 has ended: run 2 is running
    assert lease_folder(config) == [os.path.basename(os.path.dirname(current.pinned_uri))]
    lease.release(current)
    assert lease_folder(config) == []


def test_lease_dir_elsewhere_on_the_same_filesystem(model_copy, tmp_path: Path) -> None:
    config = example_config(model_copy, tmp_path, merge={"discovery": {"lease_dir": str(tmp_path / "leases")}})
    (checkpoint,) = discover_stage(config, RunOptions(checkpoint=300))
    assert checkpoint.pinned_uri.startswith(str(tmp_path / "leases") + "/")
    trainers_leases = model_copy.model_dir / lease.LEASES_FOLDER  # other tests' runs may have left it empty
    assert not trainers_leases.exists() or not any(trainers_leases.iterdir())  # nothing pinned there
    pinned = os.stat(checkpoint.pinned_uri + ".index")
    assert pinned.st_ino == os.stat(model_copy.model_dir / "model.ckpt-300.index").st_ino  # a hard link
    evaluation = evaluate_stage(config, checkpoint)
    exported = export_stage(config, "all_modes", evaluation, RunOptions())
    publish_stage(config, warmup_stage(config, exported), RunOptions())
    assert lease_folder(config) == []


def test_lease_dir_on_another_filesystem_is_refused(model_copy, tmp_path: Path) -> None:
    other = Path("/dev/shm") / f"exportflow-leases-{os.getpid()}"
    assert os.stat("/dev/shm").st_dev != os.stat(model_copy.model_dir).st_dev  # tmpfs vs the disk
    config = example_config(model_copy, tmp_path, merge={"discovery": {"lease_dir": str(other)}})
    try:
        with pytest.raises(ConfigError) as err:
            discover_stage(config, RunOptions(checkpoint=300))
    finally:
        shutil.rmtree(other, ignore_errors=True)
    assert str(err.value) == (
        f"{config.source}: discovery.lease_dir: {other} is on another filesystem than model_dir "
        f"{model_copy.model_dir}: a lease hard-links the checkpoint's files, and a hard link cannot cross "
        "filesystems; remove discovery.lease_dir to use the default .exportflow-leases inside model_dir, "
        "or choose a folder on model_dir's own filesystem or bucket"
    )
    assert not other.exists() and lease_folder(example_config(model_copy, tmp_path)) == []
