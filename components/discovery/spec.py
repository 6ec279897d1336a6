"""Discovery's component spec: no artifact inputs; complete, new checkpoints out."""

from __future__ import annotations

import dataclasses
from typing import Literal


@dataclasses.dataclass(frozen=True)
class DiscoveryParams:
    model_name: str
    model_dir: str
    policy: Literal["all_new", "latest", "every_nth"] = "all_new"
    every_n_steps: int | None = None
    max_per_run: int = 10
    only_step: int | None = None  # a manual trigger's chosen checkpoint
    include_handled: bool = False  # force: re-take checkpoints the ledger already handled
    # "New" means not handled under this configuration (components.evaluation.digest.config_digest);
    # None counts a checkpoint as handled whatever configuration handled it.
    config_digest: str | None = None
    # The configured strategies: a blessed checkpoint every one of them declined counts as handled.
    strategies: tuple[str, ...] = ()
    # Single-file checkpoints named by this pattern (Keras: ckpt-{epoch:03d}.weights.h5); None: TF's.
    checkpoint_pattern: str | None = None

    def __post_init__(self) -> None:
        if self.max_per_run <= 0:
            raise ValueError(f"max_per_run must be positive, got {self.max_per_run}")
        if self.policy == "every_nth" and not (self.every_n_steps and self.every_n_steps > 0):
            raise ValueError("policy every_nth needs a positive every_n_steps")

