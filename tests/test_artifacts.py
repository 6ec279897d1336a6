"""Artifacts round-trip through JSON (what XCom carries) and the component specs check their inputs."""

from __future__ import annotations

import dataclasses
import json

import pytest

from components.artifacts import (
    CheckpointArtifact,
    EvaluationArtifact,
    ExportArtifact,
    FileEntry,
    PushedModelArtifact,
    ThresholdResult,
)
from components.pipeline.envelope import STAGES

CHECKPOINT = CheckpointArtifact(
    uri="gs://bucket/model/model.ckpt-300",
    model_name="example",
    step=300,
    files=(FileEntry("model.ckpt-300.index", 465), FileEntry("model.ckpt-300.data-00000-of-00001", 130704)),
)
EVALUATION = EvaluationArtifact(
    uri=CHECKPOINT.uri,
    checkpoint=CHECKPOINT,
    metrics={"auc": 0.8, "loss": 0.5},
    blessed=True,
    reasons=(ThresholdResult("auc", True, "auc=0.8 >= lower bound 0.6"),),
)
EXPORT = ExportArtifact(
    uri="/staging/all_modes/300",
    model_name="example",
    strategy="all_modes",
    version="300",
    step=300,
    checkpoint_uri=CHECKPOINT.uri,
    tags=("serve", "train"),
    signatures={"serve": ("classification", "serving_default"), "train": ("train",)},
    metrics={"auc": 0.8},
    warmup_records=100,
)
PUSHED = PushedModelArtifact(
    uri="/dest/example/300",
    model_name="example",
    strategy="all_modes",
    destination="/dest",
    version="300",
    step=300,
    manifest_uri="/dest/example/300/assets.extra/export_manifest.json",
    files=5,
    bytes_total=1000,
    bytes_moved=1000,
)


@pytest.mark.parametrize("artifact", [CHECKPOINT, EVALUATION, EXPORT, PUSHED], ids=lambda a: a.TYPE_NAME)
def test_round_trip_through_json(artifact) -> None:
    text = artifact.to_json()
    assert json.loads(text)["type"] == artifact.TYPE_NAME
    assert type(artifact).from_json(text) == artifact


def test_nested_types_are_rebuilt_not_left_as_dicts() -> None:
    back = EvaluationArtifact.from_json(EVALUATION.to_json())
    assert isinstance(back.checkpoint, CheckpointArtifact)
    assert isinstance(back.checkpoint.files[0], FileEntry)
    assert isinstance(back.reasons, tuple) and isinstance(back.reasons[0], ThresholdResult)
    assert ExportArtifact.from_json(EXPORT.to_json()).signatures["serve"] == ("classification", "serving_default")


def test_wrong_artifact_type_is_refused() -> None:
    with pytest.raises(ValueError, match="expected a Model artifact, got 'Checkpoint'"):
        ExportArtifact.from_dict(CHECKPOINT.to_dict())


def test_unknown_fields_are_refused() -> None:
    data = CHECKPOINT.to_dict() | {"surprise": 1}
    with pytest.raises(ValueError, match="surprise"):
        CheckpointArtifact.from_dict(data)


@pytest.mark.parametrize("artifact", [CHECKPOINT, EVALUATION, EXPORT, PUSHED], ids=lambda a: a.TYPE_NAME)
def test_artifacts_are_frozen(artifact) -> None:
    """What a stage hands on cannot change afterwards: not through its fields, not through the dict XCom
    carries, not through the dict it was rebuilt from."""
    before = artifact.to_json()
    with pytest.raises(dataclasses.FrozenInstanceError):
        artifact.uri = "/elsewhere"
    handed_on = artifact.to_dict()
    rebuilt = type(artifact).from_dict(handed_on)
    for value in handed_on.values():
        if isinstance(value, (dict, list)):
            value.clear()
    assert artifact.to_json() == before and rebuilt.to_json() == before


def test_stage_spec_checks_input_types() -> None:
    evaluate = STAGES["evaluate"]
    evaluate.check_inputs({"checkpoint": CHECKPOINT})
    with pytest.raises(TypeError, match="input 'checkpoint' must be CheckpointArtifact, got ExportArtifact"):
        evaluate.check_inputs({"checkpoint": EXPORT})
    with pytest.raises(TypeError, match="missing input"):
        evaluate.check_inputs({})


def test_stage_entry_rebuilds_xcom_inputs_by_the_stage_spec_and_refuses_the_wrong_type() -> None:
    from components.pipeline.envelope import StageRequest, call_stage

    request = StageRequest("evaluate", "/config/never/read.yaml", inputs={"checkpoint": EXPORT.to_dict()})
    with pytest.raises(ValueError, match="expected a Checkpoint artifact, got 'Model'"):
        call_stage(request)
    with pytest.raises(TypeError, match="component 'evaluate' is missing input"):
        call_stage(StageRequest("evaluate", "/config/never/read.yaml", inputs={}))
    with pytest.raises(ValueError, match="unknown stage 'train'"):
        call_stage(StageRequest("train", "/config/never/read.yaml"))
