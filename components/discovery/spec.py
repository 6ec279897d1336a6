"""Discovery's component spec: no artifact inputs; complete, new checkpoints out."""

from __future__ import annotations

import dataclasses
from typing import Literal

from components.artifacts import CheckpointArtifact
from components.component import ComponentSpec


@dataclasses.dataclass(frozen=True)
class DiscoveryParams:
    model_name: str
    model_dir: str
    policy: Literal["all_new", "latest", "every_nth"] = "all_new"
    every_n_steps: int | None = None
    max_per_run: int = 10
    only_step: int | None = None  # a manual trigger's chosen checkpoint
    include_handled: bool = False  # force: re-take checkpoints the ledger already published


SPEC = ComponentSpec(
    name="discover", inputs={}, outputs={"checkpoints": CheckpointArtifact}, parameters=DiscoveryParams
)
