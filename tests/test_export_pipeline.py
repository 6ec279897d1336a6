"""Every registered strategy kind through the export stage: real config, real ledger, real SavedModels.

Evaluations are built directly (the evaluation stage is another component's business); the export stage
and the executor do the rest: decide, version, write to a temp folder, verify every tag, rename, record.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from components.artifacts import CheckpointArtifact, EvaluationArtifact, ExportArtifact, PushedModelArtifact
from components.export.compat.export_strategy import ExportStrategy
from components.export.compat.exporters import Exporter, LatestExporter
from components.export.errors import (
    ExportError,
    StrategyConfigError,
    UnknownStrategyError,
    VerificationError,
)
from components.export.executor import export
from components.export.savedmodel.verify import (
    read_set_manifest,
    signatures_by_tag,
    verify_export,
)
from components.export.spec import ExportParams
from components.layout import SET_MANIFEST
from components.ledger.records import record_publication
from components.paths import staging_dir
from components.pipeline.options import RunOptions, strategy_named
from components.pipeline.stages import ExportDeclined, export_stage, ledger_of
from examples import model
from tests.support.example_pipeline import example_config, example_config_dict, write_config

SERVE = {"serve": ("classification", "serving_default")}


def evaluation_for(trained_model, step: int, **metrics: float) -> EvaluationArtifact:
    prefix = str(trained_model.model_dir / f"model.ckpt-{step}")
    checkpoint = CheckpointArtifact(uri=prefix, model_name="example", step=step)
    return EvaluationArtifact(uri=prefix, checkpoint=checkpoint, metrics=dict(metrics), blessed=True)


def entries(path) -> list[str]:
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


NO_WARMUP = {"source": "none"}


def own_folders(strategies: list[dict]) -> list[dict]:
    """``strategies``, each publishing to its own folder (its servable is its name)."""
    return [{"servable": strategy["name"], **strategy} for strategy in strategies]


# Objects the `custom` kind and the config refer to by import path (this module is `test_export_pipeline`).


def _tf_export(estimator, export_path, checkpoint_path):
    return estimator.export_saved_model(
        export_path, model.serving_input_receiver_fn, checkpoint_path=checkpoint_path
    )


contrib_strategy = ExportStrategy("tf_contrib", _tf_export)
broken_strategy = ExportStrategy("broken", lambda estimator, export_path: _write_garbage(export_path))
failing_strategy = ExportStrategy("failing", lambda estimator, export_path: 1 / 0)


def _write_garbage(export_path: str) -> str:
    target = Path(export_path) / "1"
    (target / "variables").mkdir(parents=True)
    (target / "saved_model.pb").write_bytes(b"not a protobuf")
    return str(target)


class OutsideExporter(Exporter):
    """Writes somewhere else than it was told to."""

    def __init__(self, elsewhere: str) -> None:
        self.elsewhere = elsewhere

    @property
    def name(self):
        return "outside"

    def export(self, estimator, export_path, checkpoint_path, eval_result, is_the_final_export):
        os.makedirs(self.elsewhere, exist_ok=True)
        return self.elsewhere


def latest_exporter():
    return LatestExporter("library_latest", model.serving_input_receiver_fn, exports_to_keep=3)


ALL_KINDS = [
    {"name": "combined", "kind": "all_modes", "params": {"by_reference": True}},
    {"name": "per-mode", "kind": "all_modes", "params": {"layout": "per_mode", "modes": ["eval", "predict"]}},
    {"name": "final", "kind": "final", "params": {"max_steps": 300}},
    {"name": "latest", "kind": "latest", "params": {"by_reference": True, "verify": "graph"}},
    {"name": "best", "kind": "best", "params": {"metric": "auc", "direction": "higher_is_better"}},
    {"name": "standalone", "kind": "standalone", "params": {"shared_embedding": True}},
    {"name": "distributed", "kind": "distributed", "params": {"verify": "graph"}},
    {"name": "contrib", "kind": "custom", "params": {"target": "test_export_pipeline:contrib_strategy"}},
    {
        "name": "library-latest",
        "kind": "custom",
        "params": {"target": "test_export_pipeline:latest_exporter"},
    },
]


@pytest.fixture(scope="module")
def all_kinds(trained_model, tmp_path_factory):
    """Step 300 exported once by every kind through export_stage."""
    root = tmp_path_factory.mktemp("pipeline")
    config = example_config(trained_model, root, strategies=own_folders(ALL_KINDS), warmup=NO_WARMUP)
    evaluation = evaluation_for(trained_model, 300, auc=0.8, loss=0.5)
    exported = {s["name"]: export_stage(config, s["name"], evaluation, RunOptions()) for s in ALL_KINDS}
    return config, evaluation, exported


def test_every_kind_exports_a_verified_version_and_records_it(all_kinds):
    config, _, exported = all_kinds
    expected = {
        "combined": ("single", {"eval": ("eval",), "serve": SERVE["serve"], "train": ("train",)}, "hardlink"),
        "per-mode": ("per_mode", {"eval:eval": ("eval",), "predict:serve": SERVE["serve"]}, "saved"),
        "final": ("single", SERVE, "saved"),
        "latest": ("single", SERVE, "hardlink"),
        "best": ("single", SERVE, "saved"),
        "standalone": ("single", SERVE, "hardlink"),
        "distributed": (
            "distributed",
            {
                "entry:serve": ("classification", "route", "serving_default"),
                **{f"ps_{i}:serve": ("lookup_item_bias",) for i in range(4)},
            },
            "saved",
        ),
        "contrib": ("single", SERVE, "saved"),
        "library-latest": ("single", SERVE, "saved"),
    }
    state = ledger_of(config).load()
    for name, (layout, signatures, variables) in expected.items():
        artifact = exported[name]
        assert artifact is not None, name
        assert artifact.uri == os.path.join(staging_dir(config, name), "300"), name
        assert (artifact.version, artifact.step, artifact.layout) == ("300", 300, layout), name
        assert artifact.signatures == signatures and artifact.tags == tuple(sorted(signatures)), name
        if name not in ("contrib", "library-latest"):
            assert artifact.variables == variables, name
        assert verify_export(artifact.uri, "graph") == signatures, name
        assert state.record(300).exports[name] == artifact, name
        assert entries(staging_dir(config, name)) == ["300"], name  # no temp folders left
    per_mode = exported["per-mode"]
    assert set(per_mode.graphs) == {"eval", "predict"}
    assert read_set_manifest(per_mode.uri)["layout"] == "per_mode"
    assert signatures_by_tag(per_mode.graphs["predict"]) == SERVE
    distributed = exported["distributed"]
    assert set(distributed.graphs) == {"entry", "ps_0", "ps_1", "ps_2", "ps_3"}
    assert os.path.isfile(os.path.join(distributed.uri, SET_MANIFEST))


def test_rerun_skips_a_complete_version_and_force_rewrites(all_kinds):
    config, evaluation, exported = all_kinds
    again = export_stage(config, "final", evaluation, RunOptions())
    assert again.already_exported and again.uri == exported["final"].uri
    assert again.signatures == exported["final"].signatures
    before = os.stat(os.path.join(again.uri, "saved_model.pb")).st_mtime_ns
    forced = export_stage(config, "final", evaluation, RunOptions(force=True))
    assert not forced.already_exported
    assert os.stat(os.path.join(forced.uri, "saved_model.pb")).st_mtime_ns != before
    assert entries(staging_dir(config, "final")) == ["300"]


def test_final_means_the_runs_final_flag_or_max_steps(all_kinds, trained_model):
    config, _, _ = all_kinds
    strategy = strategy_named(config, "final")
    state = ledger_of(config).load()
    at_200 = evaluation_for(trained_model, 200, auc=0.8)
    assert export(ExportParams(config, strategy, state), at_200) is None
    assert entries(staging_dir(config, "final")) == ["300"]
    flagged = export(ExportParams(config, strategy, state, is_final=True), at_200)
    assert flagged is not None and flagged.version == "200"
    # A later run without the flag declines again, and leaves the final export alone.
    assert isinstance(export_stage(config, "final", at_200, RunOptions()), ExportDeclined)
    assert entries(staging_dir(config, "final")) == ["200", "300"]


@pytest.fixture
def fresh(trained_model, tmp_path):
    """A config of its own (own ledger, own staging) with the given strategies."""

    def make(*strategies):
        return example_config(trained_model, tmp_path, strategies=own_folders(list(strategies)), warmup=NO_WARMUP)

    return make


def test_best_uses_the_ledger_so_a_restart_never_exports_worse(fresh, trained_model):
    config = fresh({"name": "best", "kind": "best"})

    def run(step, loss):
        return export_stage(config, "best", evaluation_for(trained_model, step, loss=loss), RunOptions())

    assert isinstance(run(100, 0.6), ExportArtifact)  # the very first call exports
    assert isinstance(run(200, 0.7), ExportDeclined)
    assert run(300, 0.5).version == "300"
    # A new process has nothing in memory; the ledger still says 300 (loss 0.5) is the best so far.
    assert isinstance(run(200, 0.55), ExportDeclined)
    assert entries(staging_dir(config, "best")) == ["100", "300"]
    assert sorted(int(s) for s, r in ledger_of(config).load().checkpoints.items() if "best" in r.exports) == [
        100,
        300,
    ]
    with pytest.raises(StrategyConfigError, match="has no metrics"):
        export_stage(config, "best", evaluation_for(trained_model, 200), RunOptions())


def test_latest_retention_never_removes_unpublished_versions(fresh, trained_model):
    config = fresh(
        {"name": "latest", "kind": "latest", "params": {"exports_to_keep": 1, "by_reference": True}}
    )
    ledger = ledger_of(config)
    for step in (100, 200):
        export_stage(config, "latest", evaluation_for(trained_model, step), RunOptions())
    assert entries(staging_dir(config, "latest")) == ["100", "200"]  # neither published yet
    for step in (100, 200):
        pushed = PushedModelArtifact(
            uri=f"/dest/example/{step}",
            model_name="example",
            strategy="latest",
            destination="/dest",
            version=str(step),
            step=step,
            manifest_uri=f"/dest/example/{step}/manifest.json",
        )
        record_publication(ledger, pushed, str(trained_model.model_dir / f"model.ckpt-{step}"))
    export_stage(config, "latest", evaluation_for(trained_model, 300), RunOptions())
    assert entries(staging_dir(config, "latest")) == ["300"]


def test_timestamp_versions_are_reused_on_rerun(fresh, trained_model):
    config = fresh({"name": "stamped", "kind": "latest", "params": {"version": "timestamp"}})
    evaluation = evaluation_for(trained_model, 300)
    first = export_stage(config, "stamped", evaluation, RunOptions())
    assert int(first.version) > 1_600_000_000 and first.step == 300
    again = export_stage(config, "stamped", evaluation, RunOptions())
    assert again.already_exported and again.version == first.version


def test_bad_strategies_fail_with_nothing_staged_and_the_ledger_unchanged(fresh, trained_model, tmp_path):
    config = fresh(
        {"name": "unknown", "kind": "newest"},
        {"name": "typo", "kind": "all_modes", "params": {"layuot": "per_mode"}},
        {"name": "missing-receiver", "kind": "all_modes", "params": {"modes": ["train", "predict"]}},
        {"name": "failing", "kind": "custom", "params": {"target": "test_export_pipeline:failing_strategy"}},
        {"name": "broken", "kind": "custom", "params": {"target": "test_export_pipeline:broken_strategy"}},
        {
            "name": "outside",
            "kind": "custom",
            "params": {
                "target": "test_export_pipeline:OutsideExporter",
                "target_kwargs": {"elsewhere": str(tmp_path / "elsewhere")},
            },
        },
    )
    config = dataclasses.replace(config, receivers=dataclasses.replace(config.receivers, train=None))
    evaluation = evaluation_for(trained_model, 300)
    before = ledger_of(config).load()
    cases = {
        "unknown": (UnknownStrategyError, "unknown export strategy kind 'newest'; known kinds"),
        "typo": (StrategyConfigError, r"unknown parameter\(s\) \['layuot'\]"),
        "missing-receiver": (
            StrategyConfigError,
            r"exports modes \['train'\] but receivers.train is not configured",
        ),
        "failing": (ExportError, "ZeroDivisionError"),
        "broken": (VerificationError, "the SavedModel proto does not parse"),
        "outside": (ExportError, "outside the export_path it was given"),
    }
    for name, (error, match) in cases.items():
        with pytest.raises(error, match=match):
            export_stage(config, name, evaluation, RunOptions())
        assert entries(staging_dir(config, name)) == [], name
    assert ledger_of(config).load() == before


def test_unwritable_staging_folder(fresh, trained_model, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the staging folder should go")
    config = dataclasses.replace(
        fresh({"name": "latest", "kind": "latest"}), staging_dir=str(blocker / "staging")
    )
    before = ledger_of(config).load()
    with pytest.raises(ExportError, match="cannot create the export folder"):
        export_stage(config, "latest", evaluation_for(trained_model, 300), RunOptions())
    assert ledger_of(config).load() == before
    assert blocker.read_text().startswith("a file")


def test_unblessed_and_unselected_are_not_exported(all_kinds, trained_model):
    config, _, _ = all_kinds
    unblessed = dataclasses.replace(evaluation_for(trained_model, 100), blessed=False)
    assert export_stage(config, "latest", unblessed, RunOptions()).reason == unblessed.summary
    unselected = export_stage(config, "latest", evaluation_for(trained_model, 100), RunOptions(strategies=("final",)))
    assert unselected == ExportDeclined("latest", 100, "not selected for this run")
    assert entries(staging_dir(config, "latest")) == ["300"]


def test_export_strategy_operator_runs_a_registered_strategy(all_kinds, trained_model, tmp_path):
    from airflow.sdk.exceptions import AirflowFailException

    from plugins.operators import StageOperator

    config, _, exported = all_kinds
    evaluation = evaluation_for(trained_model, 300, auc=0.8, loss=0.5).to_dict()
    operator = StageOperator(
        task_id="export", stage="export", config_path=config.source, strategy="contrib", evaluation=evaluation
    )
    assert operator.label() == "contrib @ step 300"  # the mapped task instance's name
    context = {"params": {}}
    result = operator.execute(context)
    assert result["uri"] == exported["contrib"].uri and result["already_exported"] is True
    assert context["exportflow_label"] == "contrib @ step 300"

    newest = own_folders([{"name": "newest", "kind": "newest"}])
    data = example_config_dict(trained_model, tmp_path / "published", strategies=newest, warmup=NO_WARMUP)
    bad = write_config(data, tmp_path / "configs" / "example.yaml")
    operator = StageOperator(
        task_id="export", stage="export", config_path=str(bad), strategy="newest", evaluation=evaluation
    )
    with pytest.raises(AirflowFailException, match="unknown export strategy kind 'newest'; known kinds"):
        operator.execute({"params": {}})
