"""One way for every entry point to reach a model's storage and ledger.

Stage tasks, the report task, the sensor and its trigger, the UI, the CLI, the demo and retention all
build storage here, so one rule decides the credentials everywhere:

* the destination (published versions, the ledger): its ``credentials_path`` key file when set; else
  the orchestrator's credentials (Airflow: the connection ``airflow.gcp_conn_id``) when given; else
  Application Default Credentials;
* every other location of the model (``model_dir``, warmup files, staging): the orchestrator's
  credentials when given, else ADC;
* ``STORAGE_EMULATOR_HOST``: as ``StorageOptions`` documents (anonymous, except credentials a source
  hands over, which are sent as they are).

Components never know where orchestrator credentials come from: they receive a ``CredentialsSource``
(``plugins/credentials.py`` turns a connection id into one). In a process that runs one model's stage,
``ModelStorage.installed()`` makes them apply to stage code that calls ``storage_for(uri)`` directly.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from components.storage.base import CredentialsSource, MiB, Storage, StorageOptions
from components.storage.errors import InvalidStorageOptions
from components.storage.registry import installed_credentials, process_credentials, scheme_of, storage_for

if TYPE_CHECKING:
    from components.config.schema import DestinationConfig, PipelineConfig
    from components.ledger import Ledger


@dataclasses.dataclass(frozen=True)
class ModelStorage:
    """How one model reaches its storage.

    ``credentials``: the orchestrator's; None: those installed in this process, else ADC.
    """

    config: PipelineConfig
    credentials: CredentialsSource | None = None

    def destination(self) -> Storage:
        """The back-end for ``destination.uri`` (published versions and the ledger)."""
        return destination_storage(self.config.destination, self.credentials)

    def for_uri(self, uri: str) -> Storage:
        """The back-end for any location of this model: the destination's own when ``uri`` is under it."""
        destination = self.config.destination.uri.rstrip("/")
        if scheme_of(uri) == scheme_of(destination) and (uri == destination or uri.startswith(destination + "/")):
            return self.destination()
        source = self.credentials if self.credentials is not None else installed_credentials()
        return storage_for(uri, StorageOptions(credentials=source) if source is not None else None)

    def ledger(self) -> Ledger:
        from components.ledger import Ledger

        return Ledger(self.config.destination.uri, self.config.name, self.destination())

    @contextlib.contextmanager
    def installed(self) -> Iterator[ModelStorage]:
        """Make these credentials apply to ``storage_for(uri)`` calls in this process for the block."""
        with process_credentials(self.credentials):
            yield self


def storage_options(destination: DestinationConfig) -> StorageOptions:
    """The back-end options a destination config asks for: timeouts, chunk and pool sizes, durability
    (errors name the config field, before anything is written)."""
    if destination.parallelism <= 0:
        raise InvalidStorageOptions(f"destination.parallelism must be positive, got {destination.parallelism}")
    if destination.chunk_mib <= 0:
        raise InvalidStorageOptions(f"destination.chunk_mib must be positive, got {destination.chunk_mib}")
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
        raise InvalidStorageOptions(f"destination: {exc} (see timeout_s, retry_deadline_s)") from exc


def destination_storage(destination: DestinationConfig, credentials: CredentialsSource | None = None) -> Storage:
    """The back-end for a destination config, by the rule above (errors name the config field)."""
    source = credentials if credentials is not None else installed_credentials()
    return storage_for(destination.uri, dataclasses.replace(storage_options(destination), credentials=source))


@dataclasses.dataclass(frozen=True)
class AccessToken:
    """Credentials handed to a stage in another interpreter: an OAuth access token, never a key.

    The orchestrator refreshes its credentials and sends the token with the stage request (stdin, never
    argv, a log or XCom); the child cannot refresh it.
    """

    token: str = dataclasses.field(repr=False)
    origin: str = "the orchestrator"  # where the token came from, for messages

    def describe(self) -> str:
        return f"access token from {self.origin}"

    def google_credentials(self) -> Any:
        from google.oauth2.credentials import Credentials

        return Credentials(token=self.token)
