"""Choose a Storage back-end from a URI's scheme; further schemes come from an entry-point group.

A plugin registers ``<scheme> = "package.module:factory"`` in the ``exportflow.storage`` group; the
factory is called with no argument, or with a ``StorageOptions`` when the caller has some.
"""

from __future__ import annotations

import re
import threading
from importlib.metadata import entry_points

from components.storage.base import Storage, StorageOptions
from components.storage.errors import UnsupportedScheme

ENTRY_POINT_GROUP = "exportflow.storage"
_SCHEME = re.compile(r"^([a-z][a-z0-9+.\-]*)://")
_instances: dict[tuple[str, StorageOptions | None], Storage] = {}
_lock = threading.Lock()


def scheme_of(uri: str) -> str:
    match = _SCHEME.match(uri)
    return match.group(1) if match else "file"


def storage_for(uri: str, options: StorageOptions | None = None) -> Storage:
    """The (cached) back-end for ``uri``: local paths and ``file://`` → local, ``gs://`` → GCS."""
    key = (scheme_of(uri), options)
    with _lock:
        if key not in _instances:
            _instances[key] = _create(key[0], options)
        return _instances[key]


def _create(scheme: str, options: StorageOptions | None) -> Storage:
    if scheme == "file":
        from components.storage.local import LocalStorage

        return LocalStorage(options)
    if scheme == "gs":
        from components.storage.gcs import GCSStorage

        return GCSStorage(options=options)
    plugins = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    if scheme in plugins:
        factory = plugins[scheme].load()
        return factory() if options is None else factory(options)
    known = sorted({"file", "gs", *plugins})
    raise UnsupportedScheme(f"no storage back-end for scheme {scheme!r}; known schemes: {known}")
