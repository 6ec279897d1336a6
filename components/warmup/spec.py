"""Warmup's component spec: an export in, the same export with warmup requests injected out."""

from __future__ import annotations

import dataclasses

from components.artifacts import ExportArtifact
from components.component import ComponentSpec
from components.config.schema import PipelineConfig

WARMUP_FILE = "tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000  # TF Serving fails the model load on the 1001st record


@dataclasses.dataclass(frozen=True)
class WarmupParams:
    config: PipelineConfig


SPEC = ComponentSpec(
    name="warmup", inputs={"export": ExportArtifact}, outputs={"export": ExportArtifact}, parameters=WarmupParams
)
