"""The TFX Model's SavedModel as an exportflow export: a copy in the PushedModel's folder, with a manifest.

TFX's Pusher also copies the model into its PushedModel artifact (an archive of what was pushed). Here
that copy (hard links where the filesystem allows, so O(1) in the model's size) is the folder exportflow
publishes from: its manifest is written into the copy, so the upstream Model artifact is never changed.

The manifest is exportflow's (``components.manifest.build_manifest``) with two fields filled without
TensorFlow, which this environment cannot hold: the TF version that wrote the SavedModel and its
signatures by tag set, read from ``saved_model.pb`` (``savedmodel_proto``).
"""

from __future__ import annotations

import os
import shutil

from components.artifacts import EvaluationArtifact, ExportArtifact
from components.config.schema import MAX_WARMUP_RECORDS, StrategyConfig
from components.layout import WARMUP_PATH
from components.manifest import (
    build_manifest,
    list_export_files,
    missing_savedmodel_files,
    read_manifest_file,
    write_manifest,
)
from components.storage import scheme_of
from exportflow_tfx.errors import TfxPushError
from exportflow_tfx.savedmodel_proto import SavedModelProtoError, count_warmup_records, read_savedmodel_info


def copy_savedmodel(source: str, target: str) -> None:
    """``source`` into a fresh ``target`` (hard links, else copies); what an earlier attempt left goes first."""
    for path, kind in ((source, "Model"), (target, "PushedModel")):
        if scheme_of(path) != "file":
            raise TfxPushError(
                f"the {kind} artifact is at {path}; this component reads and writes TFX artifacts on local "
                "disk only (give the pipeline a local pipeline_root); the destination may be gs://"
            )
    if not os.path.isdir(source):
        raise TfxPushError(f"Model artifact folder {source} does not exist: did the producer write its SavedModel?")
    shutil.rmtree(target, ignore_errors=True)

    def link_or_copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=link_or_copy)


def as_export(
    folder: str,
    *,
    model_name: str,
    strategy: StrategyConfig,
    step: int,
    checkpoint: str,
    evaluation: EvaluationArtifact,
) -> ExportArtifact:
    """The SavedModel copied into ``folder`` as an exportflow export of version ``step``, its manifest
    written (or, when the model already carries one, checked by publish as any export's is)."""
    try:
        info = read_savedmodel_info(folder)
        warmup_records = count_warmup_records(folder, WARMUP_PATH)
    except SavedModelProtoError as exc:
        raise TfxPushError(f"{exc}; the Model artifact must hold a TF SavedModel in its serving folder") from exc
    if warmup_records > MAX_WARMUP_RECORDS:
        raise TfxPushError(
            f"{WARMUP_PATH} of the Model holds {warmup_records} warmup requests; TF Serving fails the load "
            f"beyond {MAX_WARMUP_RECORDS}: write at most {MAX_WARMUP_RECORDS} (nothing was published)"
        )
    export = ExportArtifact(
        uri=folder,
        model_name=model_name,
        strategy=strategy.name,
        version=str(step),
        step=step,
        checkpoint_uri=checkpoint,
        tags=tuple(sorted(info.signatures)),
        signatures=info.signatures,
        metrics=dict(evaluation.metrics),
        warmup_records=warmup_records,
    )
    if read_manifest_file(folder) is None:
        files = tuple(list_export_files(folder))
        missing = missing_savedmodel_files([f.path for f in files])
        if missing:
            raise TfxPushError(f"{folder} is not a complete SavedModel: missing {', '.join(missing)}; nothing was published")
        extra = {"warmup_records": export.warmup_records, "source": "tfx"}
        manifest = build_manifest(
            export, evaluation, strategy, extra, files=files, tensorflow_version=info.tensorflow_version
        )
        write_manifest(folder, manifest)
    return export

