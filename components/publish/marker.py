"""The commit marker: ``<version>.published.json``, written last, says a version is complete and verified.

Its presence is what makes a version *published* for reruns (nothing to move when it names the same
content), for retention (candidates to keep or delete, best by the metrics it records) and for the UI.
It is read as a typed value here so those readers do not each pick keys out of a dict; the JSON on disk
keeps the format exportflow has always written (same keys, ``indent=1``, sorted), so destinations
published before still read, and keys a newer exportflow adds survive a rewrite (``extra``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

from components.storage import ObjectInfo, ObjectNotFound, PreconditionFailed, Storage

log = logging.getLogger(__name__)

MARKER_VERSION = 1
_EXPORT_KEYS = ("model", "strategy", "step", "checkpoint", "metrics", "blessed")
_KNOWN_KEYS = {"marker_version", "servable", "version", "graphs", "published_at", "run", *_EXPORT_KEYS}


class MarkerFormatError(ValueError):
    """A marker whose JSON is not the shape exportflow writes (then its version counts as unpublished)."""


@dataclasses.dataclass(frozen=True)
class MarkedGraph:
    """One graph of the version: where it is and which manifest (by CRC32C) it holds."""

    name: str | None  # None for a single-graph version
    uri: str
    manifest_crc32c: str | None
    files: int
    total_bytes: int


@dataclasses.dataclass(frozen=True)
class MarkedExport:
    """What the publish stage records about the export it published: reruns recognise their own export
    by it, retention ranks versions by ``metrics``."""

    model: str
    strategy: str
    step: int
    checkpoint: str | None
    metrics: dict[str, Any]
    blessed: bool


@dataclasses.dataclass(frozen=True)
class CommitMarker:
    servable: str
    version: str
    graphs: tuple[MarkedGraph, ...]
    published_at: str  # ISO 8601, seconds, UTC
    run: str | None  # the owner of the lock the version was published under
    export: MarkedExport | None = None  # absent when the protocol is used without the publish stage
    marker_version: int = MARKER_VERSION
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)  # keys this exportflow does not know

    @property
    def graph_names(self) -> tuple[str | None, ...]:
        return tuple(g.name for g in self.graphs)

    @property
    def content(self) -> dict[str, str | None]:
        """The content it names: each graph's manifest CRC32C (two markers match when these are equal)."""
        return {g.name or "": g.manifest_crc32c for g in self.graphs}

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.export.metrics) if self.export is not None else {}

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            **self.extra,
            "marker_version": self.marker_version,
            "servable": self.servable,
            "version": self.version,
            "graphs": [
                {
                    "name": g.name,
                    "uri": g.uri,
                    "manifest_crc32c": g.manifest_crc32c,
                    "files": g.files,
                    "bytes": g.total_bytes,
                }
                for g in self.graphs
            ],
            "published_at": self.published_at,
            "run": self.run,
        }
        if self.export is not None:
            data.update({key: getattr(self.export, key) for key in _EXPORT_KEYS})
        return data

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True).encode()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CommitMarker:
        """Read a marker leniently (one from an older exportflow may lack keys); a value of the wrong
        shape raises ``MarkerFormatError``."""
        try:
            graphs = tuple(
                MarkedGraph(
                    name=g.get("name"),
                    uri=str(g.get("uri", "")),
                    manifest_crc32c=g.get("manifest_crc32c"),
                    files=int(g.get("files", 0)),
                    total_bytes=int(g.get("bytes", 0)),
                )
                for g in data.get("graphs", [])
            )
            export = None
            if any(key in data for key in _EXPORT_KEYS):
                metrics = data.get("metrics") or {}
                if not isinstance(metrics, dict):
                    raise TypeError(f"metrics is {type(metrics).__name__}, not an object")
                export = MarkedExport(
                    model=data.get("model", ""),
                    strategy=data.get("strategy", ""),
                    step=data.get("step", 0),
                    checkpoint=data.get("checkpoint"),
                    metrics=metrics,
                    blessed=data.get("blessed", True),
                )
            return cls(
                servable=str(data.get("servable", "")),
                version=str(data.get("version", "")),
                graphs=graphs,
                published_at=str(data.get("published_at", "")),
                run=data.get("run"),
                export=export,
                marker_version=int(data.get("marker_version", MARKER_VERSION)),
                extra={k: v for k, v in data.items() if k not in _KNOWN_KEYS},
            )
        except (AttributeError, TypeError, ValueError) as exc:
            raise MarkerFormatError(f"not a commit marker: {exc}") from exc

    @classmethod
    def from_json(cls, data: bytes) -> CommitMarker:
        try:
            value = json.loads(data)
        except ValueError as exc:
            raise MarkerFormatError(f"not valid JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise MarkerFormatError(f"a JSON {type(value).__name__}, not an object")
        return cls.from_dict(value)



def read_marker(storage: Storage, uri: str) -> CommitMarker | None:
    """The commit marker at ``uri``, or None (absent or unreadable — then the version is not published).
    One request on GCS (``read_versioned`` makes two): its generation is not needed here; a repair
    replaces the marker by the generation it finds then."""
    try:
        data = storage.read_bytes(uri)
    except ObjectNotFound:
        return None
    try:
        return CommitMarker.from_json(data)
    except MarkerFormatError as exc:
        log.warning("commit marker %s is unreadable (%s); treating the version as unpublished", uri, exc)
        return None


def write_marker(storage: Storage, uri: str, marker: CommitMarker) -> ObjectInfo:
    """Create the marker in one request; when repairing a marked version, replace the one found (by
    generation, so a concurrent change is not overwritten)."""
    data = marker.to_json()
    try:
        return storage.write_bytes(uri, data, if_generation_match=0)
    except PreconditionFailed:
        existing = storage.stat(uri)
        generation = existing.generation if existing and existing.generation else 0
        return storage.write_bytes(uri, data, if_generation_match=generation)
