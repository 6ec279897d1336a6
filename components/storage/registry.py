"""Choose a Storage back-end from a URI's scheme; further schemes come from an entry-point group.

A plugin registers ``<scheme> = "package.module:factory"`` in the ``exportflow.storage`` group; the
factory is called with no argument, or with a ``StorageOptions`` when the caller has some.

Entry points build storage through ``components.model_storage``, which knows a model's credentials.
A process that runs one model's stage (a task process, an external stage interpreter) installs those
credentials with ``process_credentials`` so that stage code calling ``storage_for(uri)`` without
options uses them too; processes serving many models (triggerer, api-server) never install any.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from importlib.metadata import entry_points

from components.storage.base import CredentialsSource, Storage, StorageOptions
from components.storage.errors import UnsupportedScheme

ENTRY_POINT_GROUP = "exportflow.storage"
_SCHEME = re.compile(r"^([a-z][a-z0-9+.\-]*)://")
_instances: dict[tuple[str, StorageOptions | None], Storage] = {}
_lock = threading.Lock()
_installed: list[CredentialsSource] = []  # a stack: process_credentials blocks may nest


def scheme_of(uri: str) -> str:
    match = _SCHEME.match(uri)
    return match.group(1) if match else "file"


def storage_for(uri: str, options: StorageOptions | None = None) -> Storage:
    """The (cached) back-end for ``uri``: local paths and ``file://`` → local, ``gs://`` → GCS.

    Without ``options``, the credentials installed by ``process_credentials`` apply (else ADC).
    """
    if options is None:
        installed = installed_credentials()
        options = StorageOptions(credentials=installed) if installed is not None else None
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


def installed_credentials() -> CredentialsSource | None:
    with _lock:
        return _installed[-1] if _installed else None


@contextlib.contextmanager
def process_credentials(source: CredentialsSource | None) -> Iterator[None]:
    """Within the block, storage built without options in this process uses ``source``'s credentials.

    Process-wide on purpose (transfer threads see it too): use it only where the process runs one
    model's stage at a time. ``None`` changes nothing.
    """
    if source is None:
        yield
        return
    with _lock:
        _installed.append(source)
    try:
        yield
    finally:
        with _lock:
            del _installed[len(_installed) - 1 - _installed[::-1].index(source)]
