"""Find objects already at the destination's back-end that hold a file's exact bytes.

Two places are searched, both on the destination's back-end (same scheme; on GCS a rewrite between
buckets is server-side too):

* **earlier versions** of the same servable (``<destination>/<servable>/``, every graph): most files of
  a new version — assets, vocabularies, often the variables — are unchanged from the last one;
* **the checkpoint** the export came from: with variables exported by reference (hard links of the
  checkpoint's ``.index`` / ``.data-*`` files), ``variables/variables.*`` are byte-identical to
  ``model.ckpt-<step>.*``, so a checkpoint already in the bucket means no variable bytes go through
  the worker.

Identity is size + CRC32C. GCS lists CRC32C for free; local disk does not, so a candidate's checksum is
computed only when its size matches, once, and cached. The copy itself is verified again afterwards
(``pool.transfer_one``), so a candidate that changed in between costs an upload, not a wrong file.
"""

from __future__ import annotations

import logging
import posixpath
import threading
from collections import defaultdict
from collections.abc import Iterable

from components.artifacts import FileEntry
from components.layout import BOOKKEEPING, TEMP_PREFIX
from components.storage import ObjectInfo, Storage, StorageError, scheme_of

log = logging.getLogger(__name__)


class DedupeIndex:
    """Objects by size, with lazily known CRC32C; ``find(entry)`` returns a URI with the same bytes."""

    def __init__(self, storage: Storage, objects: Iterable[ObjectInfo]) -> None:
        self._storage = storage
        self._by_size: dict[int, list[ObjectInfo]] = defaultdict(list)
        self._crc: dict[str, str | None] = {}
        self._lock = threading.Lock()
        for info in objects:
            if info.size > 0:
                self._by_size[info.size].append(info)

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_size.values())

    def find(self, entry: FileEntry) -> str | None:
        if entry.crc32c is None or entry.size == 0:
            return None
        for info in self._by_size.get(entry.size, ()):
            if self._crc_of(info) == entry.crc32c:
                return info.uri
        return None

    def _crc_of(self, info: ObjectInfo) -> str | None:
        if info.crc32c is not None:
            return info.crc32c
        with self._lock:
            if info.uri in self._crc:
                return self._crc[info.uri]
        try:
            crc: str | None = self._storage.checksum(info.uri)
        except StorageError:
            crc = None  # vanished or unreadable: not a candidate
        with self._lock:
            self._crc[info.uri] = crc
        return crc


def build_index(
    storage: Storage,
    *,
    servable_base: str,
    exclude: Iterable[str],
    destination_scheme: str,
    checkpoint_uri: str | None,
) -> DedupeIndex:
    """Candidates from earlier versions under ``servable_base`` (minus ``exclude`` prefixes and our own
    bookkeeping) and from the checkpoint's files when they live on the same back-end."""
    excluded = tuple(p.rstrip("/") + "/" for p in exclude)
    candidates: list[ObjectInfo] = []
    for info in storage.list(servable_base):
        relative = info.uri[len(servable_base.rstrip("/")) + 1 :]
        name = posixpath.basename(relative)
        if info.uri.startswith(excluded) or relative.startswith(f"{BOOKKEEPING}/") or name.startswith(TEMP_PREFIX):
            continue
        candidates.append(info)
    if checkpoint_uri and scheme_of(checkpoint_uri) == destination_scheme:
        candidates += checkpoint_objects(storage, checkpoint_uri)
    log.debug("dedupe: %d candidate objects", len(candidates))
    return DedupeIndex(storage, candidates)


def checkpoint_objects(storage: Storage, checkpoint_uri: str) -> list[ObjectInfo]:
    """The ``<prefix>.index`` and ``<prefix>.data-*`` objects of the checkpoint at ``checkpoint_uri``."""
    folder, _, stem = checkpoint_uri.rstrip("/").rpartition("/")
    if not folder or not stem:
        return []
    try:
        names = storage.list_names(folder)
    except StorageError as exc:
        log.info("dedupe: cannot list checkpoint folder %s (%s); not using it", folder, exc)
        return []
    found = []
    for name in names:
        if name == f"{stem}.index" or name.startswith(f"{stem}.data-"):
            try:
                info = storage.stat(storage.join(folder, name))
            except StorageError:
                info = None
            if info is not None:
                found.append(info)
    return found
