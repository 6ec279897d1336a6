"""The destination's storage as the config asks for it: credentials, timeouts, chunk size, pool size.

Publishing, retention, the ledger and the staging area (which shares the destination's credentials and
transfer settings) all reach the destination this one way; bad settings fail here, naming the config
field, before anything is written.
"""

from __future__ import annotations

from components.config.schema import DestinationConfig
from components.publish.errors import DestinationError
from components.storage import InvalidStorageOptions, Storage, StorageOptions, storage_for
from components.storage.base import MiB


def storage_options(destination: DestinationConfig) -> StorageOptions:
    """The back-end options a destination config asks for (errors name the config field)."""
    if destination.parallelism <= 0:
        raise DestinationError(f"destination.parallelism must be positive, got {destination.parallelism}")
    if destination.chunk_mib <= 0:
        raise DestinationError(f"destination.chunk_mib must be positive, got {destination.chunk_mib}")
    try:
        return StorageOptions(
            project=destination.project,
            credentials_path=destination.credentials_path,
            timeout=destination.timeout_s,
            retry_deadline=destination.retry_deadline_s,
            chunk_size=destination.chunk_mib * MiB,
            pool_size=max(16, destination.parallelism + 4),
            durable=destination.fsync,
        )
    except InvalidStorageOptions as exc:
        raise DestinationError(f"destination: {exc} (see timeout_s, retry_deadline_s)") from exc


def destination_storage(destination: DestinationConfig) -> Storage:
    return storage_for(destination.uri, storage_options(destination))
