"""Find complete checkpoints in the model directory and choose the new ones by policy.

Cost: one listing of the model directory with sizes (``Storage.list_files``: on GCS one paged list
call with ``delimiter="/"`` whose response carries every size, so no per-object request however many
files a checkpoint has), plus one read of the small ``checkpoint`` state file. Nothing here pins or
writes; ``components.discovery.lease`` pins what a run takes.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable

from components.artifacts import CheckpointArtifact, FileEntry
from components.config.checkpoint_pattern import FilePattern
from components.discovery.checkpoints import (
    STATE_FILE,
    CheckpointFiles,
    basename,
    group_checkpoint_files,
    parse_state_file,
    step_of,
)
from components.discovery.errors import (
    CheckpointVanished,
    DiscoveryError,
    IncompleteCheckpoint,
    ModelDirError,
)
from components.discovery.single_files import SingleFileCheckpoint, group_single_files
from components.discovery.spec import DiscoveryParams
from components.ledger import LedgerState
from components.storage import ObjectNotFound, Storage, StorageError, storage_for

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Listing:
    """What one listing of a model directory shows."""

    model_dir: str
    # by step; on a clash the prefix the state file names wins. One file per checkpoint with a pattern.
    complete: dict[int, CheckpointFiles | SingleFileCheckpoint]
    incomplete: dict[str, CheckpointFiles | SingleFileCheckpoint]  # by prefix: files missing, empty or partial
    named: tuple[str, ...]  # prefixes the state file names, in its order
    named_missing: tuple[str, ...]  # named by the state file, but no file of theirs is left

    @property
    def steps(self) -> list[int]:
        return sorted(self.complete)

    def describe_steps(self, limit: int = 20) -> str:
        steps = self.steps
        shown = ", ".join(map(str, steps[-limit:]))
        return f"{len(steps)} complete: " + (f"..., {shown}" if len(steps) > limit else shown or "none")


def list_checkpoints(
    model_dir: str,
    storage: Storage | None = None,
    *,
    pattern: str | None = None,
    judge: Callable[[int], bool] = lambda step: True,
) -> Listing:
    """List ``model_dir`` once and sort its checkpoints into complete, incomplete and named-but-gone.

    ``pattern``: checkpoints are single files named by it (Keras, ``components.discovery.single_files``)
    instead of TensorFlow's index and shards; ``judge(step)``: whether to read that file's bytes to judge
    it (one small ranged read each), else its size alone decides."""
    storage = storage or storage_for(model_dir)
    try:
        files = storage.list_files(model_dir)
    except StorageError as exc:
        raise ModelDirError(f"cannot list model_dir {model_dir}: {exc}") from exc
    if not files:
        raise ModelDirError(_missing_or_empty(model_dir, storage))
    if pattern is not None:
        return _single_file_listing(model_dir, group_single_files(FilePattern.parse(pattern), files, storage, judge))
    sizes = {info.uri.rpartition("/")[2]: info.size for info in files}
    state_text = ""
    if STATE_FILE in sizes:
        state_uri = storage.join(model_dir, STATE_FILE)
        try:
            state_text = storage.read_bytes(state_uri).decode("utf-8", "replace")
        except ObjectNotFound:
            log.info(
                "%s disappeared while listing (the trainer rewrites it); using the listing alone", state_uri
            )
        except StorageError as exc:
            raise ModelDirError(f"cannot read the checkpoint state file {state_uri}: {exc}") from exc
    groups = group_checkpoint_files(sizes)
    named = tuple(dict.fromkeys(basename(p) for p in parse_state_file(state_text)))
    complete: dict[int, CheckpointFiles] = {}
    for prefix in [*(p for p in named if p in groups), *sorted(p for p in groups if p not in named)]:
        files_of = groups[prefix]
        if files_of.complete and files_of.step not in complete:
            complete[files_of.step] = files_of
    incomplete = {p: f for p, f in groups.items() if not f.complete}
    for prefix, files_of in sorted(incomplete.items()):
        log.info("ignoring incomplete checkpoint %s: missing %s", prefix, ", ".join(files_of.missing()))
    named_missing = tuple(p for p in named if p not in groups)
    if named_missing:
        log.warning(
            "the state file in %s names checkpoints whose files are gone: %s",
            model_dir,
            ", ".join(named_missing),
        )
    return Listing(model_dir, complete, incomplete, named, named_missing)


def _single_file_listing(model_dir: str, groups: dict[str, SingleFileCheckpoint]) -> Listing:
    complete: dict[int, CheckpointFiles | SingleFileCheckpoint] = {}
    for name in sorted(groups):
        if groups[name].complete and groups[name].step not in complete:
            complete[groups[name].step] = groups[name]
    incomplete = {name: f for name, f in groups.items() if not f.complete}
    for name, entry in sorted(incomplete.items()):
        log.info("ignoring incomplete checkpoint %s: %s", name, entry.problem)
    return Listing(model_dir, complete, incomplete, (), ())


def _missing_or_empty(model_dir: str, storage: Storage) -> str:
    hint = "point model_dir at the trainer's output folder (where model.ckpt-<step>.index files appear)"
    try:
        names = storage.list_names(model_dir)
    except StorageError:
        names = []
    if names:
        return (
            f"model_dir {model_dir} holds folders only ({', '.join(names[:5])}), no checkpoint files; {hint}"
        )
    if "://" in model_dir:
        return f"model_dir {model_dir} has no objects (missing or empty); {hint}"
    if not os.path.exists(model_dir):
        return f"model_dir {model_dir} does not exist; {hint}"
    return f"model_dir {model_dir} is empty; {hint}"


def choose(
    listing: Listing, params: DiscoveryParams, handled: set[int]
) -> list[CheckpointFiles | SingleFileCheckpoint]:
    """The checkpoints a run takes, ordered by step: new ones by policy, capped; or the one step asked for."""
    if params.only_step is not None:
        return [_requested(listing, params.only_step)]
    steps = listing.steps
    if params.policy == "latest":
        chosen = steps[-1:] if steps and (params.include_handled or steps[-1] not in handled) else []
    else:
        candidates = [s for s in steps if params.include_handled or s not in handled]
        if params.policy == "every_nth":
            candidates = [s for s in candidates if s % (params.every_n_steps or 1) == 0]
        chosen = candidates[: params.max_per_run]  # oldest first, so a backlog drains in order
    return [listing.complete[s] for s in chosen]


def _requested(listing: Listing, step: int) -> CheckpointFiles | SingleFileCheckpoint:
    if step in listing.complete:
        return listing.complete[step]
    where = listing.model_dir
    partial = [f for f in listing.incomplete.values() if f.step == step]
    if partial:
        raise IncompleteCheckpoint(
            f"checkpoint {where}/{partial[0].prefix} is incomplete: missing {', '.join(partial[0].missing())}"
        )
    gone = [p for p in listing.named_missing if step_of(p) == step]
    if gone:
        raise CheckpointVanished(
            f"checkpoint {where}/{gone[0]} is named by the state file but its files are gone "
            "(the trainer's keep_checkpoint_max deleted it?); choose another step"
        )
    raise DiscoveryError(f"no checkpoint with step {step} in {where}; {listing.describe_steps()}")


def discover(
    params: DiscoveryParams, ledger: LedgerState, storage: Storage | None = None
) -> list[CheckpointArtifact]:
    """New complete checkpoints for this model and configuration, ordered by step, chosen by the policy."""
    storage = storage or storage_for(params.model_dir)
    handled = set() if params.include_handled else ledger.handled_steps(params.config_digest, params.strategies)
    # Only a checkpoint this run could take has its bytes read (single files; handled ones were judged
    # when they were taken), so a model_dir of many epochs costs no more per run than its new files.
    judge = (lambda step: step == params.only_step) if params.only_step is not None else (lambda step: step not in handled)
    listing = list_checkpoints(params.model_dir, storage, pattern=params.checkpoint_pattern, judge=judge)
    return [
        checkpoint_artifact(params.model_name, params.model_dir, files, storage)
        for files in choose(listing, params, handled)
    ]


def checkpoint_artifact(
    model_name: str, model_dir: str, files: CheckpointFiles | SingleFileCheckpoint, storage: Storage
) -> CheckpointArtifact:
    return CheckpointArtifact(
        uri=storage.join(model_dir, files.prefix),
        model_name=model_name,
        step=files.step,
        files=tuple(FileEntry(path=name, size=size) for name, size in files.file_sizes()),
    )
