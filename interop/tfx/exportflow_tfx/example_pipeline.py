"""An example TFX pipeline: a SavedModel brought in as a TFX Model with a blessing, then ExportflowPusher.

``import_savedmodel`` stands where a TFX Trainer and Evaluator would: it copies a SavedModel into its
Model artifact's serving folder (TFX's layout), sets the ``step`` and ``checkpoint`` properties that make
the version deterministic, and emits a ModelBlessing with ``blessed`` and float metrics. Run it with
TFX's LocalDagRunner and an SQLite MLMD store::

    interop/tfx/.venv/bin/python -m exportflow_tfx.example_pipeline \\
        --saved-model /path/to/saved_model_dir --step 300 --config /path/to/model.yaml \\
        --root /tmp/tfx-example
"""

# No `from __future__ import annotations` here: TFX's @component reads the annotations as types.
import argparse
import json
import os
import shutil
from typing import Any

from tfx.dsl.component.experimental.annotations import OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.orchestration import metadata
from tfx.orchestration import pipeline as tfx_pipeline
from tfx.orchestration.local.local_dag_runner import LocalDagRunner
from tfx.types import standard_artifacts
from tfx.utils import path_utils

from exportflow_tfx.component import ExportflowPusher


@component
def import_savedmodel(
    model: OutputArtifact[standard_artifacts.Model],
    blessing: OutputArtifact[standard_artifacts.ModelBlessing],
    saved_model_dir: Parameter[str],
    step: Parameter[int],
    checkpoint: Parameter[str],
    blessed: Parameter[int],
    metrics_json: Parameter[str],
) -> None:
    """A SavedModel as a TFX Model in its serving folder, and a blessing with its metrics.

    ``step`` -1 leaves the Model without ``step`` and ``checkpoint``, as TFX's Trainer leaves it: the
    version is then the Model artifact's MLMD id."""
    shutil.copytree(saved_model_dir, path_utils.serving_model_dir(model.uri))
    if step >= 0:
        model.set_int_custom_property("step", step)
        model.set_string_custom_property("checkpoint", checkpoint)
    blessing.set_int_custom_property("blessed", blessed)
    for name, value in sorted(json.loads(metrics_json).items()):
        blessing.set_float_custom_property(name, float(value))
    os.makedirs(blessing.uri, exist_ok=True)
    marker = "BLESSED" if blessed == 1 else "NOT_BLESSED"  # the file TFX's Evaluator writes, for its readers
    with open(os.path.join(blessing.uri, marker), "w", encoding="utf-8"):
        pass


@component
def judge_infra(infra_blessing: OutputArtifact[standard_artifacts.InfraBlessing], blessed: Parameter[int]) -> None:
    """Stands where TFX's InfraValidator would: an InfraBlessing with ``blessed``."""
    infra_blessing.set_int_custom_property("blessed", blessed)


def build_pipeline(
    *,
    root: str,
    saved_model_dir: str,
    step: int | None,
    config: str,
    checkpoint: str = "",
    blessed: bool = True,
    metrics: dict[str, float] | None = None,
    name: str = "exportflow-tfx-example",
    infra_blessed: bool | None = None,
    strategy: str | None = None,
    enable_cache: bool = False,
    pusher_executor: Any = None,
) -> tfx_pipeline.Pipeline:
    """The pipeline under ``root`` (pipeline root and ``metadata.sqlite``): the producer, an InfraBlessing
    when ``infra_blessed`` is given, then the pusher.

    ``step`` None: the Model gets no step (its version is its MLMD id). ``pusher_executor``: another
    executor spec for the pusher (the tests stop a publish with one)."""
    producer = import_savedmodel(
        saved_model_dir=os.path.abspath(saved_model_dir),
        step=-1 if step is None else step,
        checkpoint=checkpoint or os.path.abspath(saved_model_dir),
        blessed=1 if blessed else 0,
        metrics_json=json.dumps(metrics or {}, sort_keys=True),
    )
    infra = None if infra_blessed is None else judge_infra(blessed=1 if infra_blessed else 0)
    pusher = ExportflowPusher(
        model=producer.outputs["model"],
        model_blessing=producer.outputs["blessing"],
        infra_blessing=None if infra is None else infra.outputs["infra_blessing"],
        config=config,
        strategy=strategy,
        custom_executor_spec=pusher_executor,
    )
    return tfx_pipeline.Pipeline(
        pipeline_name=name,
        pipeline_root=os.path.join(root, "pipeline"),
        components=[producer, *([infra] if infra is not None else []), pusher],
        metadata_connection_config=metadata.sqlite_metadata_connection_config(os.path.join(root, "metadata.sqlite")),
        enable_cache=enable_cache,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--saved-model", required=True, help="a SavedModel folder (saved_model.pb + variables/)")
    parser.add_argument(
        "--step", type=int, default=None, help="the global step: the published version (default: the Model's MLMD id)"
    )
    parser.add_argument("--config", required=True, help="the model's exportflow config file")
    parser.add_argument("--root", required=True, help="pipeline root and MLMD store folder")
    parser.add_argument("--not-blessed", action="store_true", help="emit a blessing that says no")
    args = parser.parse_args(argv)
    LocalDagRunner().run(
        build_pipeline(
            root=args.root,
            saved_model_dir=args.saved_model,
            step=args.step,
            config=args.config,
            blessed=not args.not_blessed,
        )
    )
    print(outcome(args.root))


def outcome(root: str) -> str:
    """What this run's pusher did, from its PushedModel in the MLMD store (the newest one): the run
    itself logs only TFX's own lines, and a pipeline that pushed nothing also exits 0."""
    from ml_metadata.metadata_store import metadata_store

    from exportflow_tfx import executor

    config = metadata.sqlite_metadata_connection_config(os.path.join(root, "metadata.sqlite"))
    pushed = max(metadata_store.MetadataStore(config).get_artifacts_by_type("PushedModel"), key=lambda a: a.id)
    properties = pushed.custom_properties
    if not properties[executor.PUSHED].int_value:
        return f"not pushed: {properties[executor.NOT_PUSHED_REASON].string_value}"
    where = properties[executor.PUSHED_DESTINATION].string_value
    version = properties[executor.PUSHED_VERSION].string_value
    if properties[executor.ALREADY_PUBLISHED].int_value:
        return f"version {version} was already published at {where}: nothing new"
    return f"published version {version} at {where}"


if __name__ == "__main__":
    main()
