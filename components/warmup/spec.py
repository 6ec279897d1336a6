"""Warmup's component spec: an export in, the same export with warmup requests injected out."""

from __future__ import annotations

import dataclasses

from components.config.schema import MAX_WARMUP_RECORDS, PipelineConfig

__all__ = ["MAX_WARMUP_RECORDS", "WarmupParams"]


@dataclasses.dataclass(frozen=True)
class WarmupParams:
    config: PipelineConfig

