"""Pure parsing of checkpoint file names and the ``checkpoint`` state file (no I/O here).

A checkpoint ``<prefix>-<step>`` is complete by name when ``<prefix>-<step>.index`` and every
``<prefix>-<step>.data-NNNNN-of-MMMMM`` for NNNNN in 0..MMMMM-1 exist, none of them empty. TensorFlow
writes shards into a ``<prefix>_temp*`` folder (or ``*.tempstate*`` files) and the index last, so
temp names never match these patterns; a shard of zero bytes is one that was created but not yet
written. Whether a shard holds every byte the index points at is checked later, from the index
(``components.discovery.integrity``).
"""

from __future__ import annotations

import dataclasses
import re

_CHECKPOINT_FILE = re.compile(
    r"^(?P<prefix>.+-(?P<step>\d+))\.(?:index|data-(?P<shard>\d{5})-of-(?P<total>\d{5}))$"
)
_STATE_LINE = re.compile(r'^\s*(all_model_checkpoint_paths|model_checkpoint_path):\s*"(?P<path>[^"]+)"\s*$')
STATE_FILE = "checkpoint"


def shard_name(prefix: str, shard: int, total: int) -> str:
    return f"{prefix}.data-{shard:05d}-of-{total:05d}"


@dataclasses.dataclass(frozen=True)
class CheckpointFiles:
    """The files seen for one checkpoint prefix, with their sizes."""

    prefix: str  # file-name prefix, e.g. "model.ckpt-300"
    step: int
    index_size: int | None = None
    shards: dict[int, int] = dataclasses.field(default_factory=dict)  # shard number -> size
    shard_total: int | None = None
    mixed_totals: bool = False  # shards claim different shard counts (two writers): never complete

    @property
    def complete(self) -> bool:
        return not self.missing()

    def missing(self) -> list[str]:
        """What keeps this checkpoint from being complete (file names, or a phrase), empty when complete."""
        problems = []
        if self.index_size is None:
            problems.append(f"{self.prefix}.index")
        elif self.index_size == 0:
            problems.append(f"{self.prefix}.index (empty)")
        if self.mixed_totals:
            problems.append("data shards with different shard counts")
        elif self.shard_total is None:
            problems.append(f"{self.prefix}.data-*")
        else:
            for shard in range(self.shard_total):
                size = self.shards.get(shard)
                if size is None:
                    problems.append(shard_name(self.prefix, shard, self.shard_total))
                elif size == 0:
                    problems.append(f"{shard_name(self.prefix, shard, self.shard_total)} (empty)")
        return problems

    def file_sizes(self) -> list[tuple[str, int]]:
        """``(file name, size)`` of the index and every shard, index first."""
        files = [(f"{self.prefix}.index", self.index_size or 0)]
        if self.shard_total is not None:
            files += [
                (shard_name(self.prefix, i, self.shard_total), self.shards[i]) for i in sorted(self.shards)
            ]
        return files


def group_checkpoint_files(names_and_sizes: dict[str, int]) -> dict[str, CheckpointFiles]:
    """Group a directory listing (file name → size) into checkpoints by prefix; other files are ignored."""
    found: dict[str, list] = {}  # prefix -> [step, index size, {shard: size}, {shard totals}]
    for name, size in names_and_sizes.items():
        match = _CHECKPOINT_FILE.match(name)
        if match is None:
            continue
        entry = found.get(match["prefix"])
        if entry is None:
            entry = found[match["prefix"]] = [int(match["step"]), None, {}, set()]
        if match["total"] is None:
            entry[1] = size
        else:
            entry[2][int(match["shard"])] = size
            entry[3].add(int(match["total"]))
    return {
        prefix: CheckpointFiles(
            prefix,
            step,
            index_size=index_size,
            shards=shards,
            shard_total=max(totals) if totals else None,
            mixed_totals=len(totals) > 1,
        )
        for prefix, (step, index_size, shards, totals) in found.items()
    }


def parse_state_file(text: str) -> list[str]:
    """Checkpoint paths named by a ``checkpoint`` state file, in file order, without duplicates."""
    paths: list[str] = []
    for line in text.splitlines():
        if match := _STATE_LINE.match(line):
            path = match["path"]
            if path not in paths:
                paths.append(path)
    return paths


def step_of(prefix: str) -> int | None:
    """The global step at the end of a checkpoint prefix (``model.ckpt-300`` → 300)."""
    match = re.search(r"-(\d+)$", prefix)
    return int(match.group(1)) if match else None


def basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]
