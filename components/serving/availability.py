"""When a newly listed version may get a label: TF Serving refuses a label on a version it has not loaded.

Two ways to know, as configured: ask TF Serving's model status REST API (``GET <status_url>/v1/models/
<name>``, answering ``{"model_version_status": [{"version": "5", "state": "AVAILABLE", ...}]}``) until it
reports the version AVAILABLE, within ``label_wait_seconds``; or, without a status URL, wait
``label_wait_seconds`` (at least TF Serving's ``--model_config_file_poll_wait_seconds`` plus the load
time) and trust it.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable

from components.serving.errors import VersionNotAvailable

# Called with (servable, version) once the version is listed; returns when a label may point at it.
AvailabilityWait = Callable[[str, int], None]
POLL_SECONDS = 0.2
REQUEST_TIMEOUT_SECONDS = 10.0


def version_states(status_url: str, servable: str) -> dict[int, str]:
    """Each version TF Serving reports for ``servable`` and its state (``AVAILABLE``, ``LOADING``, ...)."""
    url = f"{status_url.rstrip('/')}/v1/models/{urllib.parse.quote(servable, safe='')}"
    try:
        with urllib.request.urlopen(url, timeout=REQUEST_TIMEOUT_SECONDS) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return {}  # the server does not know the model yet (config not re-read)
        raise VersionNotAvailable(f"TF Serving status {url} answered HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise VersionNotAvailable(f"TF Serving status {url} could not be read: {exc}") from exc
    states = {}
    for item in body.get("model_version_status", []) if isinstance(body, dict) else []:
        try:
            states[int(item["version"])] = str(item.get("state", ""))
        except (KeyError, TypeError, ValueError):
            continue
    return states


def status_wait(status_url: str, timeout_seconds: float, poll_seconds: float = POLL_SECONDS) -> AvailabilityWait:
    """Poll the status API until the version is AVAILABLE; ``VersionNotAvailable`` after ``timeout_seconds``."""

    def wait(servable: str, version: int) -> None:
        deadline = time.monotonic() + timeout_seconds
        last: dict[int, str] = {}
        unreachable: VersionNotAvailable | None = None
        while True:
            try:
                last = version_states(status_url, servable)
                unreachable = None
            except VersionNotAvailable as exc:
                unreachable = exc
            if last.get(version) == "AVAILABLE":
                return
            if time.monotonic() >= deadline:
                seen = f"last seen {last}" if unreachable is None else str(unreachable)
                raise VersionNotAvailable(
                    f"TF Serving did not report {servable} version {version} AVAILABLE within "
                    f"{timeout_seconds:g} s ({seen}); the label was not moved, the version stays listed — "
                    "check the server's log, then promote again"
                ) from unreachable
            time.sleep(poll_seconds)

    return wait


def fixed_wait(seconds: float) -> AvailabilityWait:
    """Wait a fixed time (no status URL): long enough for TF Serving to re-read the config and load."""

    def wait(servable: str, version: int) -> None:
        if seconds > 0:
            time.sleep(seconds)

    return wait


def configured_wait(status_url: str | None, label_wait_seconds: float) -> AvailabilityWait:
    return status_wait(status_url, label_wait_seconds) if status_url else fixed_wait(label_wait_seconds)
