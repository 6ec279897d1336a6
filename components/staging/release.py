"""When the publish stage is done with a staged version: remove its staged copy and this worker's cached
objects of it — after publishing it, and when the stage ends without publishing (a dry run, a refusal)
unless another run may still publish that same staged version."""

from __future__ import annotations

import logging

from components.artifacts import CheckpointArtifact, ExportArtifact
from components.config.schema import PipelineConfig
from components.discovery.lease import held_by_another_run
from components.errors import ExportflowError
from components.staging.area import staging_area
from components.staging.handover import remove_version
from components.storage import StorageError

log = logging.getLogger(__name__)


def release_staged(config: PipelineConfig, exported: ExportArtifact, *, reason: str = "it is published") -> bool:
    """Remove ``exported``'s staged version (never fails the publish: retention retries it later)."""
    area = staging_area(config)
    try:
        if not area.local:
            staged = area.read_staged(exported.strategy, exported.version) or {}
            area.cache.forget([(f["crc32c"], int(f["size"])) for f in staged.get("files", []) if f.get("crc32c")])
        removed = remove_version(area, exported.strategy, exported.version)
    except (StorageError, ExportflowError) as exc:
        log.warning("staged %s not removed (%s; the next export retries): %s", exported.uri, reason, exc)
        return False
    if removed:
        log.info("removed the staged %s: %s", exported.uri, reason)
    return removed


def release_unpublished(config: PipelineConfig, exported: ExportArtifact, own: CheckpointArtifact | None) -> bool:
    """The publish stage ended without publishing ``exported`` (dry run, ``VersionConflict``, another
    refusal): its staged copy is not kept for a later export to clean up. Kept only while another run's
    lease still holds the checkpoint for this strategy (``own`` is this run's lease): a staged version is
    reused by any run exporting the same step, and that run may be warming it up or publishing it now."""
    if held_by_another_run(config, exported.checkpoint_uri, exported.strategy, own=own):
        log.info("staged %s kept: another run still holds step %d for %s", exported.uri, exported.step, exported.strategy)
        return False
    released = release_staged(config, exported, reason="nothing was published from it")
    return released
