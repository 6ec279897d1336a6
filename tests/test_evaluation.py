"""Evaluation of pinned checkpoints with real TensorFlow: the config's eval input and steps, or the
metrics training already logged; reuse after a restart; the explicit no-thresholds blessing; GCS."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from components.discovery import lease
from components.evaluation.digest import config_digest, metrics_digest
from components.evaluation.errors import LoggedMetricsMissing
from components.paths import work_dir
from components.pipeline.options import RunOptions
from components.pipeline.stages import discover_stage, evaluate_stage, ledger_of
from tests.support.example_pipeline import example_config, upload_folder, write_eval_summaries


def eval_event_files(config, step: int) -> list[str]:
    folder = os.path.join(work_dir(config, "eval"), f"eval_step_{step}")
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def test_evaluate_with_eval_input_records_metrics_reasons_and_digests(model_copy, tmp_path: Path) -> None:
    config = example_config(
        model_copy, tmp_path, merge={"evaluation": {"thresholds": [{"metric": "auc", "lower": 0.6, "upper": 0.99}]}}
    )
    checkpoint = discover_stage(config, RunOptions(checkpoint=300))[0]
    evaluation = evaluate_stage(config, checkpoint)
    assert {"auc", "accuracy", "loss"} <= set(evaluation.metrics)
    assert evaluation.blessed and [r.kind for r in evaluation.reasons] == ["lower", "upper"]
    assert evaluation.reasons[0].value == evaluation.metrics["auc"] and evaluation.reasons[0].bound == 0.6
    assert evaluation.config_digest == config_digest(config) and evaluation.metrics_digest == metrics_digest(
        config
    )
    assert evaluation.evaluated_at and evaluation.source == "evaluate"
    assert evaluation.checkpoint.pinned_uri  # evaluated from the lease
    record = ledger_of(config).load().record(300)
    assert record.evaluation == evaluation and record.first_seen
    assert len(eval_event_files(config, 300)) == 1

    # A second evaluation of the same checkpoint under the same config (a retry, a restarted run)
    # reuses the metrics: no second Estimator.evaluate, same evaluated_at; the blessing is decided again.
    stricter = example_config(model_copy, tmp_path, merge={"evaluation": {"thresholds": [{"metric": "auc", "lower": 0.99}]}})
    assert metrics_digest(stricter) == metrics_digest(config) and config_digest(stricter) != config_digest(
        config
    )
    again = evaluate_stage(stricter, checkpoint)
    assert again.metrics == evaluation.metrics and again.evaluated_at == evaluation.evaluated_at
    assert (
        not again.blessed
        and "auc=" in again.reasons[0].reason
        and "< lower bound 0.99" in again.reasons[0].reason
    )
    assert len(eval_event_files(config, 300)) == 1
    assert not lease.pinned_files_present(checkpoint)  # not blessed: the lease is released at once


def test_no_thresholds_is_an_explicit_blessing(model_copy, tmp_path: Path) -> None:
    config = example_config(
        model_copy, tmp_path, merge={"evaluation": {"thresholds": [], "input_fn": None, "input_fn_kwargs": {}}}
    )
    evaluation = evaluate_stage(config, discover_stage(config, RunOptions(checkpoint=100))[0])
    assert evaluation.blessed and evaluation.metrics == {}
    assert evaluation.summary == "blessed: blessed: no thresholds configured"
    assert [(r.metric, r.kind, r.reason) for r in evaluation.reasons] == [
        ("*", "none", "blessed: no thresholds configured")
    ]
    stored = ledger_of(config).load().record(100).evaluation
    assert stored.reasons == evaluation.reasons  # kept with the metrics, never an absent decision


@pytest.mark.parametrize("where", ["local", "gcs"])
def test_logged_metrics_from_trainings_eval_event_files(
    model_copy, tmp_path: Path, where: str, request
) -> None:
    logged = write_eval_summaries(model_copy, [100, 200])
    model = model_copy
    if where == "gcs":
        bucket = request.getfixturevalue("gcs_bucket")
        uri = upload_folder(model_copy.model_dir, f"gs://{bucket}/models/example")
        model = dataclasses.replace(model_copy, model_dir=uri)  # type: ignore[arg-type]
    config = example_config(
        model,
        tmp_path,
        merge={"evaluation": {"source": "logged", "thresholds": [{"metric": "loss", "upper": 10.0}], "input_fn": None}},
    )
    checkpoint = discover_stage(config, RunOptions(checkpoint=200))[0]
    evaluation = evaluate_stage(config, checkpoint)
    assert evaluation.source == "logged"
    assert evaluation.metrics == pytest.approx(logged[200])
    assert evaluation.blessed and evaluation.reasons[0].kind == "upper"
    assert eval_event_files(config, 200) == []  # nothing was evaluated by exportflow

    before = ledger_of(config).load()
    not_yet = discover_stage(config, RunOptions(checkpoint=300))[0]
    with pytest.raises(
        LoggedMetricsMissing, match=r"model.ckpt-300 \(step 300\): no eval summaries logged for step 300"
    ) as err:
        evaluate_stage(config, not_yet)
    assert err.value.retryable  # training may evaluate it later
    assert ledger_of(config).load() == before
    assert not lease.pinned_files_present(not_yet)  # released: a retry pins it again (test_lease_release)


def test_evaluate_a_checkpoint_in_gcs(trained_model, gcs_bucket: str, tmp_path: Path) -> None:
    uri = upload_folder(trained_model.model_dir, f"gs://{gcs_bucket}/models/example")
    config = example_config(dataclasses.replace(trained_model, model_dir=uri), tmp_path)  # type: ignore[arg-type]
    checkpoint = discover_stage(config, RunOptions(checkpoint=300))[0]
    assert checkpoint.pinned_uri.startswith(f"{uri}/.exportflow-leases/model.ckpt-300.")
    evaluation = evaluate_stage(config, checkpoint)
    assert evaluation.blessed and evaluation.metrics["auc"] > 0.6
    scratch = os.path.join(work_dir(config, "eval"), "checkpoints")
    assert not os.path.exists(scratch) or os.listdir(scratch) == []  # the local download is removed
