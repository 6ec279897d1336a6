"""Read a published version's provenance manifest for display, tolerating fields this code does not know.

The manifest's URI always comes from the ledger (``PushedModelArtifact.manifest_uri``), never from a
request. It is shown as stored: known fields get their own sections, everything is in the raw JSON.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from components.errors import ExportflowError
from components.storage import Storage, StorageError, storage_for


class ManifestUnreadable(ExportflowError):
    """The manifest the ledger points at is missing or is not JSON."""


@dataclasses.dataclass(frozen=True)
class ManifestView:
    uri: str
    raw: dict[str, Any]
    files: tuple[dict[str, Any], ...]  # {path, size, crc32c} as stored
    total_bytes: int


def manifest_view(uri: str, storage: Storage | None = None) -> ManifestView:
    """``storage``: the model's (built by the storage factory); default: the back-end for ``uri``."""
    try:
        raw = json.loads((storage or storage_for(uri)).read_bytes(uri))
    except StorageError as exc:
        raise ManifestUnreadable(f"cannot read the manifest {uri}: {exc}") from exc
    except ValueError as exc:
        raise ManifestUnreadable(f"the manifest {uri} is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ManifestUnreadable(f"the manifest {uri} is not a JSON object")
    files = tuple(f for f in raw.get("files") or () if isinstance(f, dict))
    return ManifestView(
        uri=uri,
        raw=raw,
        files=files,
        total_bytes=sum(int(f.get("size") or 0) for f in files),
    )
