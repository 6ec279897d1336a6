"""The model server config file at its URI: read with its generation, changed by compare-and-swap.

``update(storage, uri, change)`` reads the file and its generation, applies ``change`` (a pure function
of the parsed config), validates the result by rendering and re-parsing it, and writes it with
``if_generation_match`` of what it read (0: create only). Local disk writes a temp file and renames it
under that precondition; GCS checks the generation server-side. So two writers cannot lose each other's
change: the second gets ``ServingConflict`` and nothing of its change is written. A malformed existing
file is refused before anything is written.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from components.serving import model_config
from components.serving.errors import ServingConflict, ServingError
from components.storage import PreconditionFailed, Storage, StorageError


@dataclasses.dataclass(frozen=True)
class ReadConfig:
    config: Any  # ModelServerConfig
    generation: int  # 0 when the file does not exist yet


def read(storage: Storage, uri: str) -> ReadConfig:
    try:
        found = storage.read_versioned(uri)
    except StorageError as exc:
        raise ServingError(f"cannot read the model server config {uri}: {exc}") from exc
    if found is None:
        return ReadConfig(model_config.empty(), 0)
    data, generation = found
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise model_config.MalformedServingConfig(
            f"model server config {uri} is not UTF-8 text (byte {exc.start}); exportflow left it untouched"
        ) from exc
    return ReadConfig(model_config.parse(text, uri), generation)


def update(storage: Storage, uri: str, change: Callable[[Any], Any]) -> Any:
    """Apply ``change`` to the config at ``uri`` and write it if it differs; returns the config now there."""
    current = read(storage, uri)
    new = change(current.config)
    if new == current.config:
        return new  # unchanged (or still empty where no file exists): nothing written
    text = model_config.render(new, uri)
    try:
        storage.write_bytes(uri, text.encode("utf-8"), if_generation_match=current.generation)
    except PreconditionFailed as exc:
        raise ServingConflict(
            f"model server config {uri} was changed by another writer while this change was made; "
            "nothing of this change was written — run the command again to apply it to the new config"
        ) from exc
    except StorageError as exc:
        raise ServingError(f"cannot write the model server config {uri}: {exc}") from exc
    return new
