"""``ExportflowPusher``: a drop-in for TFX's Pusher that publishes with exportflow.

Inputs as the Pusher's (``model``, optional ``model_blessing`` and ``infra_blessing``), output a
``PushedModel`` with the Pusher's properties. Where the Pusher takes a ``push_destination`` proto, this
takes the model's exportflow config file: destination (local or ``gs://``), retention, serving labels
and credentials come from the same trusted file exportflow's DAG, CLI and UI read.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.channel import Channel
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from exportflow_tfx import executor


class ExportflowPusherSpec(ComponentSpec):
    PARAMETERS: ClassVar[dict[str, ExecutionParameter]] = {
        executor.CONFIG_KEY: ExecutionParameter(type=str),  # the exportflow config file (absolute path)
        executor.STRATEGY_KEY: ExecutionParameter(type=str, optional=True),  # default: the config's first
    }
    INPUTS: ClassVar[dict[str, ChannelParameter]] = {
        executor.MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        executor.MODEL_BLESSING_KEY: ChannelParameter(type=standard_artifacts.ModelBlessing, optional=True),
        executor.INFRA_BLESSING_KEY: ChannelParameter(type=standard_artifacts.InfraBlessing, optional=True),
    }
    OUTPUTS: ClassVar[dict[str, ChannelParameter]] = {executor.PUSHED_MODEL_KEY: ChannelParameter(type=standard_artifacts.PushedModel)}


class ExportflowPusher(base_component.BaseComponent):
    SPEC_CLASS = ExportflowPusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        model: Channel,
        config: str,
        model_blessing: Channel | None = None,
        infra_blessing: Channel | None = None,
        strategy: str | None = None,
        custom_executor_spec: Any = None,
    ) -> None:
        """``config``: the exportflow config file; ``strategy``: the config's strategy whose name the
        versions are recorded under (its kind is not run: the model is already exported)."""
        spec = ExportflowPusherSpec(
            model=model,
            model_blessing=model_blessing,
            infra_blessing=infra_blessing,
            config=os.path.abspath(config),  # the executor may run in another working directory
            strategy=strategy,
            pushed_model=Channel(type=standard_artifacts.PushedModel),
        )
        super().__init__(spec=spec, custom_executor_spec=custom_executor_spec)
