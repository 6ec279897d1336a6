"""The model's staging area: where versions wait between export and publish, and this worker's scratch."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from typing import Any

from components.config.schema import PipelineConfig
from components.layout import BOOKKEEPING, lock_path, staged_marker_path
from components.model_storage import storage_options
from components.paths import cache_dir, scratch_dir, staging_root
from components.staging.cache import ScratchCache
from components.storage import Storage, scheme_of, storage_for
from components.storage.registry import installed_credentials

LOCK_TTL = 120.0  # seconds a staging lock lives without renewal (renewed every third of it)


@dataclasses.dataclass(frozen=True)
class StagingArea:
    """``root``: the staging URI; ``scratch``: this worker's folder; ``storage``: the root's back-end."""

    root: str
    scratch: str
    storage: Storage
    cache: ScratchCache
    parallelism: int = 8

    @property
    def local(self) -> bool:
        return scheme_of(self.root) == "file"

    def strategy_uri(self, strategy: str) -> str:
        return os.path.join(self.root, strategy) if self.local else f"{self.root}/{strategy}"

    def version_uri(self, strategy: str, version: str) -> str:
        return self.storage.join(self.strategy_uri(strategy), version)

    def staged_marker(self, strategy: str, version: str) -> str:
        return self.storage.join(self.strategy_uri(strategy), staged_marker_path(version))

    def lock_uri(self, strategy: str, version: str) -> str:
        return self.storage.join(self.strategy_uri(strategy), lock_path(version))

    def bookkeeping_uri(self, strategy: str) -> str:
        """``<strategy>/.exportflow``: the staged markers and locks of the strategy's versions."""
        return self.storage.join(self.strategy_uri(strategy), BOOKKEEPING)

    def scratch_path(self, *parts: str) -> str:
        return os.path.join(self.scratch, *parts)

    def read_staged(self, strategy: str, version: str) -> dict[str, Any] | None:
        """The ``.staged.json`` of a version on an object store (None: not completely staged)."""
        found = self.storage.read_versioned(self.staged_marker(strategy, version))
        if found is None:
            return None
        try:
            value = json.loads(found[0])
        except ValueError:
            return None
        return value if isinstance(value, dict) else None


def staging_area(config: PipelineConfig) -> StagingArea:
    """The config's staging area, reached with the destination's credentials and transfer settings (and
    the orchestrator's credentials installed in this process, as the storage factory applies them)."""
    root = staging_root(config)
    options = dataclasses.replace(storage_options(config.destination), credentials=installed_credentials())
    return StagingArea(
        root=root,
        scratch=scratch_dir(config),
        storage=storage_for(root, options),
        cache=_cache(cache_dir(config)),
        parallelism=config.destination.parallelism,
    )


@functools.cache
def _cache(root: str) -> ScratchCache:
    """One cache object per folder and process, so its counters add up across stages."""
    return ScratchCache(root)
