"""After a version is published: remove its staged copy and this worker's cached objects of it."""

from __future__ import annotations

import logging

from components.artifacts import ExportArtifact
from components.config.schema import PipelineConfig
from components.errors import ExportflowError
from components.staging.area import staging_area
from components.staging.handover import remove_version
from components.storage import StorageError

log = logging.getLogger(__name__)


def release_staged(config: PipelineConfig, exported: ExportArtifact) -> bool:
    """Remove ``exported``'s staged version (never fails the publish: retention retries it later)."""
    area = staging_area(config)
    try:
        if not area.local:
            staged = area.read_staged(exported.strategy, exported.version) or {}
            area.cache.forget([(f["crc32c"], int(f["size"])) for f in staged.get("files", []) if f.get("crc32c")])
        removed = remove_version(area, exported.strategy, exported.version)
    except (StorageError, ExportflowError) as exc:
        log.warning("staged %s not removed after publishing (next export retries): %s", exported.uri, exc)
        return False
    if removed:
        log.info("removed the staged %s: it is published", exported.uri)
    return removed
