"""Pure parsing of checkpoint file names and the ``checkpoint`` state file (no I/O here)."""

from __future__ import annotations

import dataclasses
import re

_INDEX = re.compile(r"^(?P<prefix>.+)-(?P<step>\d+)\.index$")
_SHARD = re.compile(r"^(?P<prefix>.+)-(?P<step>\d+)\.data-(?P<shard>\d{5})-of-(?P<total>\d{5})$")
_STATE_LINE = re.compile(r'^\s*(all_)?model_checkpoint_path:\s*"(?P<path>[^"]+)"\s*$')


@dataclasses.dataclass(frozen=True)
class CheckpointFiles:
    """The files seen for one checkpoint prefix."""

    prefix: str  # file-name prefix, e.g. "model.ckpt-300"
    step: int
    index_size: int | None = None
    shards: dict[int, int] = dataclasses.field(default_factory=dict)  # shard number -> size
    shard_total: int | None = None

    @property
    def complete(self) -> bool:
        return (
            self.index_size is not None
            and self.index_size > 0
            and self.shard_total is not None
            and set(self.shards) == set(range(self.shard_total))
        )

    def file_names(self) -> list[str]:
        names = [f"{self.prefix}.index"]
        names += [f"{self.prefix}.data-{i:05d}-of-{self.shard_total:05d}" for i in sorted(self.shards)]
        return names


def group_checkpoint_files(names_and_sizes: dict[str, int]) -> dict[str, CheckpointFiles]:
    """Group a directory listing (file name → size) into checkpoints by prefix; other files are ignored."""
    groups: dict[str, CheckpointFiles] = {}
    for name, size in names_and_sizes.items():
        if match := _INDEX.match(name):
            prefix = f"{match['prefix']}-{match['step']}"
            current = groups.get(prefix) or CheckpointFiles(prefix, int(match["step"]))
            groups[prefix] = dataclasses.replace(current, index_size=size)
        elif match := _SHARD.match(name):
            prefix = f"{match['prefix']}-{match['step']}"
            current = groups.get(prefix) or CheckpointFiles(prefix, int(match["step"]))
            total = int(match["total"])
            if current.shard_total not in (None, total):
                total = max(total, current.shard_total)  # mixed shard counts: never complete
            shards = {**current.shards, int(match["shard"]): size}
            groups[prefix] = dataclasses.replace(current, shards=shards, shard_total=total)
    return groups


def parse_state_file(text: str) -> list[str]:
    """Checkpoint paths named by a ``checkpoint`` state file, oldest first, without duplicates."""
    paths: list[str] = []
    for line in text.splitlines():
        if match := _STATE_LINE.match(line):
            path = match["path"]
            if path not in paths:
                paths.append(path)
    return paths


def basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]
