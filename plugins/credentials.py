"""Airflow's side of the storage factory: the connection ``airflow.gcp_conn_id`` as GCS credentials.

Every Airflow entry point (the stage tasks, the report task, the sensor and its trigger, the UI) asks
``credentials_for(config)`` and hands the answer to ``components.model_storage``, so a model whose
destination needs the connection's key reaches it the same way everywhere. Nothing is exported as
``GOOGLE_APPLICATION_CREDENTIALS`` and no key is written to a file: the credentials object goes straight
into the GCS client.

The connection → credentials step is ``connection_credentials``, the one place that calls the google
provider (the ``google`` extra), whose hook understands every form a Google connection takes (key file
path, inline key JSON, Secret Manager, impersonation). Without the provider a model that sets
``gcp_conn_id`` fails at once with a message saying how to fix it.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from components.errors import ExportflowError

if TYPE_CHECKING:
    from components.config.schema import PipelineConfig
    from components.model_storage import AccessToken

PROVIDER_HOOK = "airflow.providers.google.common.hooks.base_google"


class ConnectionCredentialsError(ExportflowError):
    """The Airflow connection named by ``airflow.gcp_conn_id`` cannot give credentials (permanent)."""


@dataclasses.dataclass(frozen=True)
class ConnectionCredentials:
    """The Google credentials of one Airflow connection, resolved when a GCS client is first built."""

    conn_id: str

    def describe(self) -> str:
        return f"Airflow connection {self.conn_id!r}"

    def google_credentials(self) -> Any:
        return connection_credentials(self.conn_id)


def credentials_for(config: PipelineConfig) -> ConnectionCredentials | None:
    """The model's orchestrator credentials: its ``gcp_conn_id`` connection, or None for ADC."""
    conn_id = config.airflow.gcp_conn_id
    if conn_id is None:
        return None
    require_google_provider(conn_id)
    return ConnectionCredentials(conn_id)


def require_google_provider(conn_id: str) -> None:
    import importlib

    try:
        importlib.import_module(PROVIDER_HOOK)
    except ImportError as exc:
        raise ConnectionCredentialsError(
            f"airflow.gcp_conn_id is {conn_id!r} but the Google provider is not installed; "
            "install exportflow with the `google` extra (uv sync --extra google), "
            "or remove gcp_conn_id to use Application Default Credentials"
        ) from exc


def connection_credentials(conn_id: str) -> Any:
    """A ``google.auth`` credentials object for the connection (the seam tests replace)."""
    require_google_provider(conn_id)
    from airflow.providers.google.common.hooks.base_google import GoogleBaseHook

    try:
        credentials, _project = GoogleBaseHook(gcp_conn_id=conn_id).get_credentials_and_project_id()
    except Exception as exc:  # noqa: BLE001 - the provider raises many kinds; the key must not be echoed
        raise ConnectionCredentialsError(
            f"the Airflow connection {conn_id!r} gives no usable Google credentials ({type(exc).__name__}); "
            "check its key path, key JSON or Secret Manager settings"
        ) from None
    return credentials


def access_token_for(source: ConnectionCredentials | None) -> AccessToken | None:
    """A fresh access token for a stage in another interpreter, which cannot read Airflow connections.

    The child cannot refresh it: tokens last about an hour, the longest a stage can then reach GCS.
    """
    if source is None:
        return None
    from components.model_storage import AccessToken

    credentials = source.google_credentials()
    if not credentials.valid:
        import google.auth.transport.requests

        credentials.refresh(google.auth.transport.requests.Request())
    return AccessToken(token=credentials.token, origin=source.describe())
