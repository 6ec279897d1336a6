"""Preflight: ``exportflow validate`` and the start of every run find bad code and unusable places at once.

Each bad input is checked twice: through the CLI (exit code 1 and the exact line: file, field, what is wrong,
the fix; every problem, not just the first) and, for the ones a run meets, through ``run_pipeline`` (it
fails before any checkpoint is pinned and writes nothing anywhere).

Unwritable folders: tests run as root here, and root writes into a ``chmod 555`` folder anyway. As root the
folder is made immutable with ``chattr +i`` instead (root cannot create entries in it either); as any
other user ``chmod 555`` does it. An unreadable model_dir is checked in a child process started through
``setpriv`` without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH, as in test_evaluation_bad_inputs.py.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.cli import main
from components.config import load_config
from components.discovery import lease
from components.pipeline.options import RunOptions
from components.pipeline.runner import run_pipeline
from components.preflight import PreflightFailed, find_problems
from tests.support.example_pipeline import PROJECT_ROOT, example_config_file

IMPORT_FIX = "fix: check the spelling, and that the package is installed or on PYTHONPATH"


# --- the user code the configs below name -----------------------------------------------------------


def model_fn_without_features(inputs, labels, mode, params):
    raise AssertionError("never called: preflight reads the signature only")


def model_fn_with_extra_argument(features, labels, mode, params, batch_size):
    raise AssertionError("never called")


def linear_regressor_as_model_fn():
    """The natural first try with a canned estimator: a function returning it, named as model_fn."""
    import tensorflow as tf

    return tf.estimator.LinearRegressor([tf.feature_column.numeric_column("x")])


def linear_regressor(model_dir, config):
    import tensorflow as tf

    return tf.estimator.LinearRegressor(
        [tf.feature_column.numeric_column("x")], model_dir=model_dir, config=config
    )


def not_an_estimator(model_dir, config):
    return {"model_dir": model_dir}


def factory_without_config(model_dir):
    raise AssertionError("never called")


def receiver_with_arguments(feature_spec, batch_size=None):
    raise AssertionError("never called")


# --- helpers ----------------------------------------------------------------------------------------


def validate(capsys, *args: str) -> tuple[int, str, list[str]]:
    """``exportflow validate ARGS``: exit code, stdout, and stderr's lines."""
    code = main(["validate", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err.splitlines()


@contextlib.contextmanager
def unwritable(folder: Path) -> Iterator[str]:
    """``folder`` refuses new entries, even to root; yields the strerror a write then meets."""
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(folder)], check=True)
        try:
            yield os.strerror(errno.EPERM)
        finally:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
    else:
        folder.chmod(0o555)
        try:
            yield os.strerror(errno.EACCES)
        finally:
            folder.chmod(0o755)


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def assert_nothing_leased_or_written(config, destination: Path, before: list[str]) -> None:
    root, _ = lease.lease_settings(config)
    assert not os.path.exists(root) or os.listdir(root) == []
    assert tree(destination) == before


@pytest.fixture
def destination(tmp_path: Path) -> Path:
    return tmp_path / "published"


# --- a good config ------------------------------------------------------------------------------------


def test_a_good_config_is_ok_and_the_checks_leave_nothing_behind(capsys, model_copy, tmp_path, destination):
    path = example_config_file(model_copy, tmp_path, destination)
    model_files = tree(model_copy.model_dir)
    code, out, err = validate(capsys, path)
    assert (code, err) == (0, [])
    assert out == f"{path}: ok (example, 1 strategies; code and locations checked)\n"
    assert not destination.exists()  # probed through its nearest existing folder, then removed
    assert tree(tmp_path / "configs") == ["example.yaml"]
    assert tree(model_copy.model_dir) == model_files  # the lease folder was probed the same way


# --- code --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"model_fn": "examples.nope:model_fn"},
            (
                "model_fn: cannot import module 'examples.nope' for examples.nope:model_fn: No module named "
                f"'examples.nope'; {IMPORT_FIX}"
            ),
        ),
        (
            {"model_fn": "examples.model:nope"},
            f"model_fn: module 'examples.model' has no attribute 'nope'; {IMPORT_FIX}",
        ),
        (
            {"model_fn": "examples.data:DENSE_DIM"},
            "model_fn: examples.data:DENSE_DIM is not a function (its type is int); fix: name a function",
        ),
        (
            {"model_fn": "test_preflight:model_fn_without_features"},
            (
                "model_fn: test_preflight:model_fn_without_features takes (inputs, labels, mode, params), but "
                "tf.estimator calls a model_fn with features, labels, mode (and params, config when declared) and "
                "needs features; fix: make it model_fn(features, labels, mode, params, config) returning an "
                "EstimatorSpec; a function that returns a tf.estimator.Estimator (a canned one such as "
                "LinearRegressor) goes under `estimator:` instead of `model_fn:`"
            ),
        ),
        (
            {"model_fn": "test_preflight:model_fn_with_extra_argument"},
            (
                "model_fn: test_preflight:model_fn_with_extra_argument takes ['batch_size'], which tf.estimator "
                "never passes (it passes only ['config', 'features', 'labels', 'mode', 'params']); fix: remove "
                "them, or read them from params"
            ),
        ),
        (
            {"model_fn": "examples.model:serving_input_receiver_fn", "params": {"embedding_dim": 16}},
            (
                "model_fn: examples.model:serving_input_receiver_fn takes (), but tf.estimator calls a model_fn "
                "with features, labels, mode (and params, config when declared) and needs features; fix: make it "
                "model_fn(features, labels, mode, params, config) returning an EstimatorSpec; a function that "
                "returns a tf.estimator.Estimator (a canned one such as LinearRegressor) goes under `estimator:` "
                "instead of `model_fn:`"
            ),
        ),
        (
            {"model_fn": "test_preflight:linear_regressor", "params": {}},
            (
                "model_fn: test_preflight:linear_regressor takes (model_dir, config), but tf.estimator calls a "
                "model_fn with features, labels, mode (and params, config when declared) and needs features; fix: "
                "make it model_fn(features, labels, mode, params, config) returning an EstimatorSpec; a function "
                "that returns a tf.estimator.Estimator (a canned one such as LinearRegressor) goes under "
                "`estimator:` instead of `model_fn:`"
            ),
        ),
        (
            {"receivers": {"predict": "test_preflight:receiver_with_arguments"}},
            (
                "receivers.predict: test_preflight:receiver_with_arguments requires arguments ['feature_spec'], "
                "but a receiver function is called with none; fix: give them defaults, or bind them with "
                "functools.partial in your module"
            ),
        ),
        (
            {"model_fn": None, "estimator": "test_preflight:not_an_estimator", "params": {}},
            (
                "estimator: test_preflight:not_an_estimator returned dict, not a tf.estimator.Estimator; fix: "
                "return e.g. tf.estimator.LinearRegressor(feature_columns, model_dir=model_dir, config=config)"
            ),
        ),
        (
            {"model_fn": None, "estimator": "test_preflight:factory_without_config", "params": {}},
            (
                "estimator: test_preflight:factory_without_config takes (model_dir) and does not accept ['config']; "
                "it is called as factory(model_dir=..., config=...); fix: define it as def "
                "make_estimator(model_dir, config) and pass both to the Estimator"
            ),
        ),
        (
            {"model_fn": None, "estimator": "examples.model:model_fn", "params": {}},
            (
                "estimator: examples.model:model_fn takes (features, labels, mode, params): it looks like a "
                "model_fn; fix: name it under `model_fn:`; `estimator:` is a function(model_dir, config) returning "
                "a tf.estimator.Estimator"
            ),
        ),
        (
            {"strategies": [{"name": "x", "kind": "newest"}]},
            (
                "strategies[0].kind: unknown export strategy kind 'newest'; known kinds: ['all_modes', 'best', "
                "'custom', 'distributed', 'final', 'latest', 'standalone']; fix: use one of the kinds listed"
            ),
        ),
        (
            {"strategies": [{"name": "x", "kind": "custom", "params": {"target": "examples.nope:exporter"}}]},
            (
                "strategies[0].params: ImportPathError: cannot import module 'examples.nope' for "
                "examples.nope:exporter: No module named 'examples.nope'; fix: correct the strategy's params (see "
                "components/export/strategies/options.py)"
            ),
        ),
        (
            {"strategies": [{"name": "x", "kind": "best", "params": {"compare_fn": "examples.model:nope"}}]},
            f"strategies[0].params.compare_fn: module 'examples.model' has no attribute 'nope'; {IMPORT_FIX}",
        ),
    ],
)
def test_bad_code_is_named_with_its_field_and_fix(
    capsys, model_copy, tmp_path, destination, overrides, expected
):
    path = example_config_file(model_copy, tmp_path, destination, **overrides)
    code, out, err = validate(capsys, path)
    assert code == 1 and out == ""
    assert err == [f"{path}: error: {expected}"]


def test_input_fn_kwargs_are_checked_against_its_arguments(capsys, model_copy, tmp_path, destination):
    evaluation = {
        "input_fn": "examples.model:train_input_fn",
        "input_fn_kwargs": {"batch": 3},
        "steps": 2,
    }
    path = example_config_file(model_copy, tmp_path, destination, evaluation=evaluation)
    code, _, err = validate(capsys, path)
    takes = "(path, batch_size, epochs, shuffle_buffer)"
    assert code == 1
    assert err == [
        (
            f"{path}: error: evaluation.input_fn_kwargs: examples.model:train_input_fn takes {takes} and has no "
            "argument ['batch']; fix: remove ['batch'] from input_fn_kwargs, or add them to the input_fn"
        ),
        (
            f"{path}: error: evaluation.input_fn_kwargs: examples.model:train_input_fn requires ['path'], which "
            "input_fn_kwargs does not give; fix: add ['path'] to evaluation.input_fn_kwargs"
        ),
    ]


def test_every_problem_of_every_file_is_reported(capsys, model_copy, tmp_path, destination):
    bad = example_config_file(
        model_copy,
        tmp_path,
        destination,
        file_name="bad.yaml",
        model_fn="examples.nope:model_fn",
        receivers={"predict": "examples.model:nope"},
        warmup={"source": "examples", "path": str(tmp_path / "absent.tfrecord")},
    )
    broken = tmp_path / "configs" / "broken.yaml"
    broken.write_text("name: broken\n")
    good = example_config_file(model_copy, tmp_path, destination, file_name="good.yaml")
    code, out, err = validate(capsys, bad, broken, good)
    assert code == 1
    assert [line.split(": error: ")[1].split(":")[0] for line in err] == [
        "model_fn",
        "receivers.predict",
        "warmup.path",
        "model_dir",  # broken.yaml: its first missing field (loading stops at the first)
    ]
    assert err[2] == (
        f"{bad}: error: warmup.path: cannot read {tmp_path}/absent.tfrecord: No such file or directory; "
        "fix: point it at an existing, readable file"
    )
    assert err[3] == f"{broken}: error: model_dir: required field is missing"
    assert out == f"{good}: ok (example, 1 strategies; code and locations checked)\n"


def test_code_only_skips_files_and_folders(capsys, model_copy, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    path = example_config_file(model_copy, tmp_path, blocker / "published", model_dir="/nonexistent")
    code, out, err = validate(capsys, "--code-only", path)
    assert (code, err) == (0, [])
    assert out == f"{path}: ok (example, 1 strategies; code only checked)\n"
    code, _, err = validate(capsys, path)
    assert code == 1 and [line.split(": error: ")[1].split(":")[0] for line in err] == [
        "model_dir",
        "destination.uri",
        "staging",
    ]


# --- places ------------------------------------------------------------------------------------------


def test_read_only_destination_fails_validate_and_the_run_before_any_lease(capsys, model_copy, tmp_path):
    destination = tmp_path / "published"
    destination.mkdir()
    path = example_config_file(model_copy, tmp_path, destination)
    config = load_config(path)
    state = destination / ".exportflow" / "example" / "staging"
    fix = "fix: give the job write access to it, or point destination.uri at a place it can write"
    with unwritable(destination) as strerror:
        code, _, err = validate(capsys, path)
        assert code == 1
        assert err == [
            f"{path}: error: destination.uri: {destination} is read-only: {strerror}; {fix}",
            (
                f"{path}: error: staging: {state} (its existing parent {destination}) is read-only: "
                f"{strerror}; fix: exports are staged in {state}: give the job write access, or set staging "
                "to a writable location"
            ),
        ]
        with pytest.raises(PreflightFailed) as info:
            run_pipeline(config, RunOptions(checkpoint=300))
    assert [p.field for p in info.value.problems] == ["destination.uri", "staging"]
    assert not info.value.retryable
    assert str(info.value).startswith(f"{path}: 2 problem(s) found before any work:\n  - destination.uri: ")
    assert_nothing_leased_or_written(config, destination, [])


def test_destination_under_a_file(capsys, model_copy, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    path = example_config_file(model_copy, tmp_path, blocker / "published")
    code, _, err = validate(capsys, path)
    assert code == 1
    assert err[0] == (
        f"{path}: error: destination.uri: {blocker}/published cannot be created: {blocker} is a file, not a "
        "folder; fix: give the job write access to it, or point destination.uri at a place it can write"
    )


def test_a_bad_model_fn_fails_the_run_before_anything_is_pinned_or_written(model_copy, tmp_path, destination):
    path = example_config_file(model_copy, tmp_path, destination, model_fn="examples.nope:model_fn")
    config = load_config(path)
    with pytest.raises(PreflightFailed, match=r"model_fn: cannot import module 'examples.nope'"):
        run_pipeline(config, RunOptions(checkpoint=300))
    assert_nothing_leased_or_written(config, destination, [])
    assert not destination.exists()


def test_missing_model_dir(capsys, model_copy, tmp_path, destination):
    path = example_config_file(model_copy, tmp_path, destination)
    shutil.rmtree(model_copy.model_dir)
    code, _, err = validate(capsys, path)
    assert code == 1
    assert err == [
        (
            f"{path}: error: model_dir: {model_copy.model_dir} does not exist; fix: point model_dir at the "
            "trainer's checkpoint folder"
        )
    ]
    config = load_config(path)
    with pytest.raises(PreflightFailed, match=r"model_dir: .* does not exist"):
        run_pipeline(config, RunOptions(checkpoint=300))
    assert not destination.exists()


def test_unreadable_model_dir(model_copy, tmp_path, destination):
    path = example_config_file(model_copy, tmp_path, destination)
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "running as root needs util-linux setpriv to drop CAP_DAC_OVERRIDE for this test"
        caps = "-dac_override,-dac_read_search"
        prefix = [setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}"]
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "PYTHONPATH": f"{PROJECT_ROOT}:{PROJECT_ROOT / 'tests'}",
    }
    model_copy.model_dir.chmod(0)
    try:
        result = subprocess.run(
            [*prefix, sys.executable, "-m", "components.cli", "validate", str(path)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
    finally:
        model_copy.model_dir.chmod(0o755)
    assert result.returncode == 1, result.stderr[-3000:]
    assert result.stderr.splitlines() == [
        (
            f"{path}: error: model_dir: cannot list {model_copy.model_dir}: Permission denied; fix: give the job "
            "read access to the folder"
        )
    ]


def test_gcs_destination_is_probed_and_left_as_it_was(capsys, gcs, gcs_bucket, model_copy, tmp_path):
    path = example_config_file(model_copy, tmp_path, f"gs://{gcs_bucket}/models")
    code, out, err = validate(capsys, path)
    assert (code, err) == (0, []) and out.endswith("code and locations checked)\n")
    assert list(gcs.client().list_blobs(gcs_bucket)) == []  # the probe object was deleted

    missing = example_config_file(model_copy, tmp_path, "gs://no-such-bucket/models", file_name="missing.yaml")
    problems = find_problems(load_config(missing))
    assert [p.field for p in problems] == ["destination.uri", "staging"]  # staging defaults into that bucket
    assert problems[0].problem.startswith("cannot write a probe object under gs://no-such-bucket/models: ")
    assert "no-such-bucket" in problems[0].problem.partition("models: ")[2]


def test_a_module_that_raises_while_importing(capsys, model_copy, tmp_path, destination, monkeypatch):
    code_dir = tmp_path / "code"
    code_dir.mkdir()
    (code_dir / "preflight_boom.py").write_text("raise RuntimeError('CUDA driver not found')\n")
    monkeypatch.syspath_prepend(str(code_dir))
    path = example_config_file(model_copy, tmp_path, destination, model_fn="preflight_boom:model_fn")
    code, _, err = validate(capsys, path)
    assert code == 1
    assert err == [
        (
            f"{path}: error: model_fn: importing preflight_boom:model_fn raised RuntimeError: CUDA driver not "
            "found; fix: fix the module so it imports cleanly"
        )
    ]


def test_read_only_lease_folder(capsys, model_copy, tmp_path, destination):
    leases = tmp_path / "leases"
    leases.mkdir()
    path = example_config_file(model_copy, tmp_path, destination, discovery={"lease_dir": str(leases)})
    with unwritable(leases) as strerror:
        code, _, err = validate(capsys, path)
    assert code == 1
    assert err == [
        (
            f"{path}: error: discovery.lease_dir: {leases} is read-only: {strerror}; fix: checkpoints are pinned "
            f"in {leases} while a run reads them: give the job write access there, or set discovery.lease_dir to "
            "a writable folder on the model_dir's filesystem or bucket"
        )
    ]
