"""The executor: a blessed TFX Model published by exportflow's publish protocol, ledger kept as the DAG keeps it.

The order is exportflow's publish stage (``components.pipeline.stages.publish_stage``), with TFX artifacts
in and out: the blessing is recorded in the model's ledger (an unblessed model stops there, the reason
recorded, nothing written at the destination), the export is recorded, the version is published
(staged, verified, commit marker last; a rerun moves no byte), the publication is recorded, the fresh
version labelled when serving labels are configured, and retention runs. The PushedModel gets the
custom properties TFX's Pusher sets, so downstream TFX code reading them keeps working.
"""

from __future__ import annotations

import logging
from typing import Any

from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import path_utils

from components.config import load_config
from components.config.schema import PipelineConfig, StrategyConfig
from components.ledger.records import (
    ranking_rule,
    record_evaluation,
    record_export,
    record_publication,
    stamp_publication,
)
from components.model_storage import ModelStorage
from components.publish.errors import VersionConflict
from components.publish.executor import publish
from components.publish.spec import PublishParams
from components.serving.protection import retire_old_versions
from components.serving.publication import label_fresh_version
from components.transfer.pool import Observer
from exportflow_tfx.errors import TfxPushError
from exportflow_tfx.handover import as_export, copy_savedmodel
from exportflow_tfx.source import STEP_PROPERTY, blessing_of, source_of

log = logging.getLogger(__name__)

# Input and output keys and parameters: the Pusher's names where it has them.
MODEL_KEY = "model"
MODEL_BLESSING_KEY = "model_blessing"
INFRA_BLESSING_KEY = "infra_blessing"
PUSHED_MODEL_KEY = "pushed_model"
CONFIG_KEY = "config"
STRATEGY_KEY = "strategy"

# The PushedModel's custom properties: TFX's Pusher sets the first three (pushed: int 1/0).
PUSHED = "pushed"
PUSHED_DESTINATION = "pushed_destination"  # the version's folder, as the Pusher's serving path
PUSHED_VERSION = "pushed_version"
NOT_PUSHED_REASON = "not_pushed_reason"
MANIFEST_URI = "exportflow_manifest_uri"
ALREADY_PUBLISHED = "exportflow_already_published"  # int 1 when a rerun found the version published


class Executor(base_executor.BaseExecutor):
    """Publishes the Model when blessed; the PushedModel says what happened."""

    def Do(
        self,
        input_dict: dict[str, list[Any]],
        output_dict: dict[str, list[Any]],
        exec_properties: dict[str, Any],
    ) -> None:
        pushed_model = artifact_utils.get_single_instance(output_dict[PUSHED_MODEL_KEY])
        model = artifact_utils.get_single_instance(input_dict[MODEL_KEY])
        config = load_config(exec_properties[CONFIG_KEY])  # ConfigError names the file and field
        strategy = _strategy(config, exec_properties.get(STRATEGY_KEY))
        source = source_of(model)
        evaluation = blessing_of(
            config.name, source, _optional(input_dict, MODEL_BLESSING_KEY), _optional(input_dict, INFRA_BLESSING_KEY)
        )
        ledger = ModelStorage(config).ledger()
        if not evaluation.blessed:
            record_evaluation(ledger, evaluation)
            log.info("%s (step %d) not pushed: %s", model.uri, source.step, evaluation.summary)
            pushed_model.set_int_custom_property(PUSHED, 0)
            pushed_model.set_string_custom_property(NOT_PUSHED_REASON, evaluation.summary)
            return

        # The SavedModel is checked (and its manifest written into the copy) before the ledger hears of it.
        serving_dir = path_utils.serving_model_path(model.uri, path_utils.is_old_model_artifact(model))
        copy_savedmodel(serving_dir, pushed_model.uri)
        export = as_export(
            pushed_model.uri,
            model_name=config.name,
            strategy=strategy,
            step=source.step,
            checkpoint=source.checkpoint,
            evaluation=evaluation,
        )
        record_evaluation(ledger, evaluation)
        record_export(ledger, export)
        try:
            pushed = publish(PublishParams(config, strategy, evaluation), export, observer=self.observer())
        except VersionConflict as exc:
            raise TfxPushError(
                f"version {source.step} of {strategy.servable or config.name} is already published at "
                f"{config.destination.uri} with other content, and a published version is never rewritten; "
                f"{_version_fix(model)}"
            ) from exc
        run_id = self._context.pipeline_run_id if self._context else None
        pushed = stamp_publication(pushed, ledger.load().record(pushed.step), run_id)
        record_publication(ledger, pushed, export.checkpoint_uri, ranking_rule(config.evaluation.thresholds))
        servable = strategy.servable or config.name
        label_fresh_version(config, servable, pushed.version, run_id=pushed.run_id)
        retire_old_versions(config, servable)

        pushed_model.set_int_custom_property(PUSHED, 1)
        pushed_model.set_string_custom_property(PUSHED_DESTINATION, pushed.uri)
        pushed_model.set_string_custom_property(PUSHED_VERSION, pushed.version)
        pushed_model.set_string_custom_property(MANIFEST_URI, pushed.manifest_uri)
        pushed_model.set_int_custom_property(ALREADY_PUBLISHED, int(pushed.already_published))

    def observer(self) -> Observer | None:
        """Told of every object the publish protocol writes (a seam: the tests stop a publish here)."""
        return None


def _strategy(config: PipelineConfig, name: str | None) -> StrategyConfig:
    names = [s.name for s in config.strategies]
    for strategy in config.strategies:
        if name in (None, "", strategy.name):
            return strategy
    raise TfxPushError(f"{config.source}: no strategy named {name!r}; configured: {names}; pass one of them")


def _version_fix(model: Any) -> str:
    """What to change so the Model gets a version of its own (ExportflowPusher has no ``force``)."""
    if model.has_custom_property(STEP_PROPERTY):
        return (
            f"this Model's int custom property {STEP_PROPERTY!r} names that version: give a new Model a step no "
            "other Model published, or leave it unset to publish under the Model's MLMD id"
        )
    return (
        "that version is this Model's MLMD id, which another metadata store's Model also had: set the Model's "
        f"int custom property {STEP_PROPERTY!r} to a step no other Model published"
    )


def _optional(input_dict: dict[str, list[Any]], key: str) -> Any | None:
    artifacts = input_dict.get(key) or []
    return artifact_utils.get_single_instance(artifacts) if artifacts else None

