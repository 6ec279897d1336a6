"""A worker-local cache of stored objects, addressed by CRC32C and size.

A stage that needs a staged export on local disk (warmup loads it; a publish to another store reads it)
gets each object from here: a hit is a hard link, a miss one download, verified against the CRC32C the
store reported. Files this worker wrote itself (an export before it was staged) are adopted, so the
worker that exported a version never downloads it again. A published version's objects are forgotten by
the worker that publishes it; anything unused for a day is pruned (``prune``), so the cache is bounded. Cached files are never written in place (every
writer here replaces files atomically), so hard links to them are safe.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import os
import shutil
import threading
import time
import uuid

from components.staging.errors import StagedVersionCorrupt
from components.storage import ObjectInfo, Storage, crc32c_of_file

log = logging.getLogger(__name__)
MAX_AGE = 24 * 3600.0  # seconds an unused cached object is kept


@dataclasses.dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    bytes_downloaded: int = 0
    adopted: int = 0


class ScratchCache:
    """Objects under ``<root>/objects/<crc32c hex>-<size>``."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.stats = CacheStats()
        self._lock = threading.Lock()

    def path_for(self, crc32c: str, size: int) -> str:
        return os.path.join(self.root, "objects", f"{base64.b64decode(crc32c).hex()}-{size}")

    def get(self, storage: Storage, info: ObjectInfo) -> str:
        """A local file with the object's bytes: cached, else downloaded once and verified."""
        crc = info.crc32c or storage.checksum(info.uri)
        path = self.path_for(crc, info.size)
        if _has(path, info.size):
            os.utime(path)  # recently used: pruning keeps it
            with self._lock:
                self.stats.hits += 1
            return path
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.part-{uuid.uuid4().hex[:8]}"
        try:
            storage.download_file(info.uri, tmp)
            got = crc32c_of_file(tmp)
            if got != crc or os.path.getsize(tmp) != info.size:
                raise StagedVersionCorrupt(
                    f"{info.uri} downloaded as {os.path.getsize(tmp)} bytes with crc32c {got}; the store "
                    f"listed {info.size} bytes with crc32c {crc} — was it replaced meanwhile? Rerun the export"
                )
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        with self._lock:
            self.stats.misses += 1
            self.stats.bytes_downloaded += info.size
        return path

    def adopt(self, local_path: str, crc32c: str, size: int) -> None:
        """Keep a file this worker already has (hard link, else copy) as the object ``crc32c``/``size``."""
        path = self.path_for(crc32c, size)
        if _has(path, size):
            return
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.part-{uuid.uuid4().hex[:8]}"
        try:
            os.link(local_path, tmp)
        except OSError:
            shutil.copyfile(local_path, tmp)
        os.replace(tmp, path)
        with self._lock:
            self.stats.adopted += 1

    def prune(self, max_age: float = MAX_AGE, now: float | None = None) -> int:
        """Drop objects unused for ``max_age`` seconds (a worker that exported versions another worker
        published keeps them no longer than that); returns how many."""
        folder = os.path.join(self.root, "objects")
        now = time.time() if now is None else now
        dropped = 0
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            return 0
        for name in names:
            path = os.path.join(folder, name)
            try:
                if now - os.stat(path).st_mtime > max_age:
                    os.unlink(path)
                    dropped += 1
            except FileNotFoundError:
                continue
        return dropped

    def forget(self, keys: list[tuple[str, int]]) -> None:
        """Drop these objects (a published version's): a later reader downloads them again."""
        for crc, size in keys:
            try:
                os.unlink(self.path_for(crc, size))
            except FileNotFoundError:
                pass

    def materialize(self, storage: Storage, objects: dict[str, ObjectInfo], folder: str) -> None:
        """``folder/<relative path>`` for every object, as hard links to cached files."""
        for relative, info in sorted(objects.items()):
            cached = self.get(storage, info)
            target = os.path.join(folder, *relative.split("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if os.path.lexists(target):
                os.unlink(target)
            try:
                os.link(cached, target)
            except OSError:
                shutil.copyfile(cached, target)


def _has(path: str, size: int) -> bool:
    try:
        return os.path.getsize(path) == size
    except FileNotFoundError:
        return False
