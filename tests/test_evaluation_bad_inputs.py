"""Bad input, each through the real pipeline (``run_pipeline`` for the one step): the specific error,
naming the checkpoint and the cause, and a ledger left byte for byte as it was, with no lease left over.

Unreadable files: tests run as root here, and root reads a ``chmod 000`` file anyway. So the run that
must fail to read goes to a child process started through ``setpriv`` with CAP_DAC_OVERRIDE and
CAP_DAC_READ_SEARCH dropped: still uid 0, but bound by the file modes like any user (without root,
the plain ``chmod`` is enough and no setpriv is needed).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from components.artifacts import CheckpointArtifact, EvaluationArtifact
from components.discovery import lease
from components.discovery.errors import (
    CheckpointUnreadable,
    CheckpointVanished,
    CorruptCheckpoint,
    IncompleteCheckpoint,
    ModelDirError,
)
from components.discovery.executor import list_checkpoints
from components.evaluation.errors import CheckpointMismatch, EvalInputError, ThresholdError
from components.ledger.records import record_evaluation
from components.pipeline.options import RunOptions
from components.pipeline.runner import run_pipeline
from components.pipeline.stages import ledger_of
from components.preflight import PreflightFailed
from tests.support.example_pipeline import example_config

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def raising_input_fn(path: str) -> None:
    raise ValueError(f"cannot parse {os.path.basename(path)}: schema changed")


class Setup:
    """A config over a private model copy, and a ledger that already holds something."""

    def __init__(self, model, tmp_path: Path, evaluation=None, **top) -> None:
        self.model_dir = model.model_dir
        self.config = example_config(model, tmp_path, merge={"evaluation": evaluation or {}}, **top)
        ledger = ledger_of(self.config)
        earlier = CheckpointArtifact(uri=str(self.model_dir / "model.ckpt-7"), model_name="example", step=7)
        record_evaluation(
            ledger,
            EvaluationArtifact(uri=earlier.uri, checkpoint=earlier, metrics={"auc": 0.4}, blessed=False),
        )
        self.ledger_path = Path(ledger.uri)
        self.ledger_bytes = self.ledger_path.read_bytes()

    def fails(self, error: type[Exception], match: str, step: int = 300) -> pytest.ExceptionInfo:
        with pytest.raises(error, match=match) as info:
            run_pipeline(self.config, RunOptions(checkpoint=step))
        self.assert_nothing_left()
        return info

    def assert_nothing_left(self) -> None:
        assert self.ledger_path.read_bytes() == self.ledger_bytes
        root, _ = lease.lease_settings(self.config)
        assert not os.path.exists(root) or os.listdir(root) == []


@pytest.fixture
def setup(model_copy, tmp_path: Path) -> Setup:
    return Setup(model_copy, tmp_path)


def test_corrupt_index(setup: Setup) -> None:
    index = setup.model_dir / "model.ckpt-300.index"
    data = bytearray(index.read_bytes())
    data[len(data) // 3] ^= 0xFF
    index.write_bytes(bytes(data))
    setup.fails(
        CorruptCheckpoint,
        r"checkpoint .*/model.ckpt-300 \(step 300\): the index .* is damaged: checksum mismatch",
    )


def test_truncated_data_shard(setup: Setup) -> None:
    shard = setup.model_dir / "model.ckpt-300.data-00000-of-00001"
    size = shard.stat().st_size
    with open(shard, "r+b") as handle:
        handle.truncate(size // 2)
    info = setup.fails(CorruptCheckpoint, "truncated")
    # The user's file is named, not the lease's second name for it; and what the failure means for the run.
    assert str(info.value) == (
        f"checkpoint {setup.model_dir}/model.ckpt-300 (step 300): data shard {shard} has {size // 2} bytes "
        f"but the index needs {size} (truncated, or still being copied); this checkpoint is not exported; "
        "the run's other checkpoints are still evaluated and published"
    )


def test_a_truncated_checkpoint_fails_alone(setup: Setup) -> None:
    shard = setup.model_dir / "model.ckpt-200.data-00000-of-00001"
    with open(shard, "r+b") as handle:
        handle.truncate(shard.stat().st_size // 2)
    with pytest.raises(CorruptCheckpoint, match=r"model.ckpt-200 \(step 200\).*still evaluated and published"):
        run_pipeline(setup.config, RunOptions())
    handled = ledger_of(setup.config).load()
    assert handled.record(300) is not None and handled.record(300).publications  # published all the same
    assert handled.record(200) is None
    root, _ = lease.lease_settings(setup.config)
    assert os.listdir(root) == []


def test_missing_data_shard(setup: Setup) -> None:
    (setup.model_dir / "model.ckpt-300.data-00000-of-00001").unlink()
    setup.fails(IncompleteCheckpoint, r"model.ckpt-300 is incomplete: missing model.ckpt-300.data-\*")
    # A scheduled run simply does not take it: the others are complete.
    assert list_checkpoints(str(setup.model_dir)).steps == [0, 100, 200]


def test_state_file_names_a_checkpoint_that_is_gone(setup: Setup) -> None:
    for path in setup.model_dir.glob("model.ckpt-300.*"):
        path.unlink()
    assert 'model_checkpoint_path: "model.ckpt-300"' in (setup.model_dir / "checkpoint").read_text()
    info = setup.fails(
        CheckpointVanished, r"model.ckpt-300 is named by the state file but its files are gone"
    )
    assert info.value.retryable


def test_empty_and_missing_model_dir(setup: Setup) -> None:
    shutil.rmtree(setup.model_dir)
    setup.fails(PreflightFailed, r"model_dir: .*/model does not exist")  # found before discovery starts
    setup.model_dir.mkdir()
    setup.fails(ModelDirError, r"model_dir .*/model is empty")


def test_eval_input_fn_raising(model_copy, tmp_path: Path) -> None:
    setup = Setup(model_copy, tmp_path, {"input_fn": "test_evaluation_bad_inputs:raising_input_fn"})
    setup.fails(
        EvalInputError,
        r"checkpoint .*/model.ckpt-300 \(step 300\): the eval input_fn test_evaluation_bad_inputs:raising_input_fn "
        r"raised ValueError: cannot parse eval.tfrecord: schema changed",
    )


def test_threshold_on_a_metric_the_evaluation_does_not_produce(model_copy, tmp_path: Path) -> None:
    setup = Setup(model_copy, tmp_path, {"thresholds": [{"metric": "precision", "lower": 0.5}]})
    setup.fails(
        ThresholdError,
        r"evaluation.thresholds\[0\] is on 'precision', but evaluating checkpoint .*model.ckpt-300 \(step 300\) "
        r"produced only \['accuracy', 'auc', 'loss'\]",
    )


def test_checkpoint_from_a_different_model(model_copy, tmp_path: Path) -> None:
    setup = Setup(model_copy, tmp_path, params={"embedding_dim": 8, "hidden_units": 32})
    setup.fails(
        CheckpointMismatch,
        r"checkpoint .*model.ckpt-300 \(step 300\) does not match model_fn examples.model:model_fn .*"
        r"item_embedding has shape \[1000, 16\] in the checkpoint, \[1000, 8\] in the model",
    )


UNREADABLE_CHILD = textwrap.dedent(
    """
    import sys
    from components.config import load_config
    from components.pipeline.runner import run_pipeline
    from components.pipeline.options import RunOptions
    try:
        run_pipeline(load_config(sys.argv[1]), RunOptions(checkpoint=300))
    except Exception as exc:
        print(f"{type(exc).__name__}: {exc}")
        sys.exit(3)
    """
)


def run_without_read_override(config_path: str) -> subprocess.CompletedProcess:
    """Run the pipeline in a child that file modes apply to, even as root (see the module docstring)."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "running as root needs util-linux setpriv to drop CAP_DAC_OVERRIDE for this test"
        caps = "-dac_override,-dac_read_search"
        prefix = [setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.run(
        [*prefix, sys.executable, "-c", UNREADABLE_CHILD, config_path],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


@pytest.mark.parametrize(
    "unreadable, error",
    [
        (
            "checkpoint",
            ModelDirError.__name__
            + r": cannot read the checkpoint state file .*/checkpoint: .*Permission denied",
        ),
        (
            "model.ckpt-300.index",
            CheckpointUnreadable.__name__
            + r": checkpoint .*model.ckpt-300 \(step 300\): cannot read its index: .*Permission denied",
        ),
    ],
)
def test_unreadable_files(setup: Setup, unreadable: str, error: str) -> None:
    target = setup.model_dir / unreadable
    target.chmod(0)
    try:
        result = run_without_read_override(setup.config.source)
    finally:
        target.chmod(0o644)
    assert result.returncode == 3, result.stderr[-3000:]
    assert re.search(error, result.stdout), result.stdout
    setup.assert_nothing_left()
