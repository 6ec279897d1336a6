"""A process restart between evaluation and export: no worse model is exported, nothing is done twice.

tf.estimator's BestExporter keeps its best in memory and exports whatever it sees first after a restart
(tensorflow/tensorflow#47396). Here the state lives in the ledger at the destination, and the restart is
real: one child process evaluates and is killed with SIGKILL before exporting; a new child runs the
pipeline again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from components.discovery import lease
from components.paths import staging_dir, work_dir
from components.pipeline.options import RunOptions
from components.pipeline.runner import run_pipeline
from components.pipeline.stages import ledger_of
from tests.support.example_pipeline import example_config

PROJECT_ROOT = Path(__file__).resolve().parent.parent

EVALUATE_THEN_DIE = textwrap.dedent(
    """
    import os, signal, sys
    from components.config import load_config
    from components.pipeline.options import RunOptions
    from components.pipeline.stages import discover_stage, evaluate_stage

    config = load_config(sys.argv[1])
    for checkpoint in discover_stage(config, RunOptions(checkpoint=300)):
        evaluate_stage(config, checkpoint)
    os.kill(os.getpid(), signal.SIGKILL)  # the worker dies before any export
    """
)

RUN = textwrap.dedent(
    """
    import json, sys
    from components.config import load_config
    from components.pipeline.runner import run_pipeline

    report = run_pipeline(load_config(sys.argv[1]))
    print(json.dumps({
        "evaluated": {e.checkpoint.step: [e.blessed, e.evaluated_at] for e in report.evaluations},
        "exported": [e.step for e in report.exports],
        "published": [p.version for p in report.published],
    }))
    """
)


def child(script: str, config_path: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.run(
        [sys.executable, "-c", script, config_path],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


def test_restart_between_evaluation_and_export(model_copy, tmp_path: Path) -> None:
    thresholds = [{"metric": "auc", "lower": 0.6, "change": {"direction": "higher_is_better"}}]
    config = example_config(model_copy, tmp_path, merge={"evaluation": {"thresholds": thresholds}})
    ledger = ledger_of(config)

    # Before: step 200 is published (the best so far), by a process that is gone by now.
    first = run_pipeline(config, RunOptions(checkpoint=200))
    assert [p.version for p in first.published] == ["200"]

    # Process A evaluates step 300 (blessed against 200), then is killed before exporting it.
    killed = child(EVALUATE_THEN_DIE, config.source)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    after_kill = ledger.load()
    evaluated_300 = after_kill.record(300).evaluation
    assert evaluated_300.blessed and evaluated_300.baseline_step == 200 and not after_kill.record(300).exports
    auc = {step: after_kill.record(step).evaluation.metrics["auc"] for step in (200, 300)}
    assert auc[300] > auc[200], f"the fixture's model is expected to improve from step 200 to 300: {auc}"

    # Process B, a fresh start: takes every new checkpoint.
    restarted = child(RUN, config.source)
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    report = json.loads(restarted.stdout.strip().splitlines()[-1])
    # 200 is published: not taken again. 0 and 100 are worse than the published best: evaluated after the
    # restart against the ledger's baseline, not blessed, not exported.
    assert sorted(report["evaluated"]) == ["0", "100", "300"]
    assert report["evaluated"]["0"][0] is False and report["evaluated"]["100"][0] is False
    # 300 was evaluated once, before the kill: its metrics are reused, not recomputed.
    assert report["evaluated"]["300"] == [True, evaluated_300.evaluated_at]
    summaries = os.listdir(os.path.join(work_dir(config, "eval"), "eval_step_300"))
    assert len(summaries) == 1 and "tfevents" in summaries[0]  # one Estimator.evaluate, in process A
    assert report["exported"] == [300] and report["published"] == ["300"]

    state = ledger.load()
    assert state.published_steps() == {200, 300}
    assert not state.record(0).exports and not state.record(100).exports
    assert sorted(os.listdir(staging_dir(config, "all_modes"))) == []  # published: staged copies released
    reasons = " ".join(r.reason for r in state.record(100).evaluation.reasons)
    assert "vs baseline" in reasons and "(step 200, higher is better)" in reasons and "misses" in reasons
    assert state.best["all_modes"].step == 300

    # Run again: nothing new, nothing redone, the ledger untouched.
    ledger_bytes = Path(ledger.uri).read_bytes()
    again = run_pipeline(config)
    assert (again.evaluations, again.exports, again.published) == ((), (), ())
    assert Path(ledger.uri).read_bytes() == ledger_bytes

    # The only lease left is the killed process's; the stale-lease cleanup removes it once it expires.
    root, ttl = lease.lease_settings(config)
    leftover = os.listdir(root)
    assert len(leftover) == 1 and leftover[0].startswith("model.ckpt-300.")
    created = int(leftover[0].split(".")[-2])
    assert lease.clean_stale(root, ttl, now=created + ttl + 1) == leftover
