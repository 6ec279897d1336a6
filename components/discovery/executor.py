"""Find complete checkpoints in the model directory and choose the new ones by policy."""

from __future__ import annotations

import logging

from components.artifacts import CheckpointArtifact, FileEntry
from components.discovery.checkpoints import CheckpointFiles, basename, group_checkpoint_files, parse_state_file
from components.discovery.errors import DiscoveryError, ModelDirError
from components.discovery.spec import DiscoveryParams
from components.ledger import LedgerState
from components.storage import Storage, StorageError, storage_for

log = logging.getLogger(__name__)


def list_complete_checkpoints(model_dir: str, storage: Storage | None = None) -> list[CheckpointFiles]:
    """Complete checkpoints, those named by the state file first (oldest first), then the rest by step."""
    storage = storage or storage_for(model_dir)
    try:
        names = storage.list_names(model_dir)
        if not names:
            raise ModelDirError(
                f"model_dir {model_dir} is missing or empty; point model_dir at the trainer's output folder"
            )
        sizes = {}
        for name in names:
            if ".index" in name or ".data-" in name:
                info = storage.stat(storage.join(model_dir, name))
                if info is not None:
                    sizes[name] = info.size
        state_text = ""
        if "checkpoint" in names:
            state_text = storage.read_bytes(storage.join(model_dir, "checkpoint")).decode("utf-8", "replace")
    except StorageError as exc:
        raise ModelDirError(f"cannot read model_dir {model_dir}: {exc}") from exc
    groups = group_checkpoint_files(sizes)
    complete = {prefix: files for prefix, files in groups.items() if files.complete}
    for prefix, files in groups.items():
        if not files.complete:
            log.info("ignoring incomplete checkpoint %s (index or data shards missing)", prefix)
    named = [basename(p) for p in parse_state_file(state_text)]
    ordered = [complete[p] for p in named if p in complete]
    missing_named = [p for p in named if p not in complete]
    if missing_named:
        log.warning("state file names checkpoints that are gone or incomplete: %s", missing_named)
    rest = sorted((f for p, f in complete.items() if p not in named), key=lambda f: f.step)
    return ordered + rest


def discover(params: DiscoveryParams, ledger: LedgerState, storage: Storage | None = None) -> list[CheckpointArtifact]:
    """New complete checkpoints for this model, ordered by step, chosen by the policy and capped."""
    storage = storage or storage_for(params.model_dir)
    found = list_complete_checkpoints(params.model_dir, storage)
    by_step = {files.step: files for files in found}
    if params.only_step is not None:
        if params.only_step not in by_step:
            raise DiscoveryError(
                f"checkpoint step {params.only_step} is not a complete checkpoint in {params.model_dir}; "
                f"complete steps: {sorted(by_step)}"
            )
        chosen = [by_step[params.only_step]]
    else:
        handled = set() if params.include_handled else ledger.handled_steps()
        candidates = sorted((f for f in found if f.step not in handled), key=lambda f: f.step)
        if params.policy == "latest":
            candidates = candidates[-1:]
        elif params.policy == "every_nth":
            candidates = [f for f in candidates if f.step % (params.every_n_steps or 1) == 0]
        chosen = candidates[-params.max_per_run :] if params.policy != "all_new" else candidates[: params.max_per_run]
    return [_artifact(params, storage, files) for files in chosen]


def _artifact(params: DiscoveryParams, storage: Storage, files: CheckpointFiles) -> CheckpointArtifact:
    entries = []
    for name in files.file_names():
        size = files.index_size if name.endswith(".index") else files.shards[int(name.split(".data-")[1][:5])]
        entries.append(FileEntry(path=name, size=size or 0))
    return CheckpointArtifact(
        uri=storage.join(params.model_dir, files.prefix),
        model_name=params.model_name,
        step=files.step,
        files=tuple(entries),
    )
