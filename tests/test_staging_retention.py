"""Disk stays bounded over consecutive runs: staging holds nothing once versions are published, and the
destination holds the ``keep`` newest (+ the best); the run table shows retention's deletions as retired."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from components.paths import staging_dir
from components.pipeline.options import RunOptions
from components.pipeline.report import publications_table, retired_publications
from components.pipeline.runner import run_pipeline
from components.pipeline.stages import ledger_of
from examples.train import train
from tests.support.example_pipeline import TrainedModel


def versions(folder: str | Path) -> list[int]:
    return sorted(int(n) for n in os.listdir(folder) if n.isdigit()) if os.path.isdir(folder) else []


def test_five_runs_with_keep_2_leave_two_newest_plus_best_and_empty_staging(
    model_copy: TrainedModel, make_config, tmp_path: Path
) -> None:
    config = make_config(
        model_copy,
        tmp_path / "published",
        evaluation={"input_fn": "examples.model:eval_input_fn", "input_fn_kwargs": {"path": str(model_copy.eval_data)}, "steps": 2},
        strategies=[{"name": "all_modes", "kind": "all_modes", "params": {"by_reference": True}}],
    )
    config = dataclasses.replace(config, destination=dataclasses.replace(config.destination, keep=2))
    served = tmp_path / "published" / "example"
    staged = staging_dir(config, "all_modes")
    assert staged == str(tmp_path / "published" / ".exportflow" / "example" / "staging" / "all_modes")  # the local default
    ledger = ledger_of(config)
    seen: list[tuple[int, int]] = []
    for run in range(5):
        if run:  # the trainer writes one more checkpoint between runs
            train(str(model_copy.model_dir), str(model_copy.data_dir), steps=300 + 100 * run, checkpoint_every=100)
        before = ledger.load()
        report = run_pipeline(config, RunOptions())
        assert report.published, f"run {run} published nothing"
        after = ledger.load()
        published = versions(served)
        seen.append((len(versions(staged)), len(published)))

        losses = {r.step: r.evaluation.metrics["loss"] for r in after.checkpoints.values() if r.publications}
        best = min(losses, key=lambda step: (losses[step], -step))
        newest = sorted(losses)[-2:]
        assert published == sorted({*newest, best}), f"run {run}: {published}, newest {newest}, best {best}"
        assert versions(staged) == [] and not [n for n in os.listdir(staged) if n.startswith(".tmp-")]

        table = publications_table(before, after, retired=retired_publications(config, after))
        rows = {line.split()[0]: line.split()[-1] for line in table.splitlines()[2:]}
        for step in losses:
            expected = {"new", "earlier"} if step in published else {"retired"}
            assert rows[str(step)] in expected, f"step {step}:\n{table}"
        assert "retired" in rows.values() or len(losses) <= 2, table
    assert all(count == 0 for count, _ in seen) and all(count <= 3 for _, count in seen), seen
