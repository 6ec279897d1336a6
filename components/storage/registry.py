"""Choose a Storage back-end from a URI's scheme; further schemes come from an entry-point group."""

from __future__ import annotations

import re
from importlib.metadata import entry_points

from components.storage.base import Storage
from components.storage.errors import UnsupportedScheme

ENTRY_POINT_GROUP = "exportflow.storage"
_SCHEME = re.compile(r"^([a-z][a-z0-9+.\-]*)://")
_instances: dict[str, Storage] = {}


def scheme_of(uri: str) -> str:
    match = _SCHEME.match(uri)
    return match.group(1) if match else "file"


def storage_for(uri: str) -> Storage:
    """The (cached) back-end for ``uri``: local paths and ``file://`` → local, ``gs://`` → GCS."""
    scheme = scheme_of(uri)
    if scheme not in _instances:
        _instances[scheme] = _create(scheme)
    return _instances[scheme]


def _create(scheme: str) -> Storage:
    if scheme == "file":
        from components.storage.local import LocalStorage

        return LocalStorage()
    if scheme == "gs":
        from components.storage.gcs import GCSStorage

        return GCSStorage()
    plugins = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    if scheme in plugins:
        return plugins[scheme].load()()
    known = sorted({"file", "gs", *plugins})
    raise UnsupportedScheme(f"no storage back-end for scheme {scheme!r}; known schemes: {known}")
