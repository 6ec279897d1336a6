"""Refuse to start the compose stack while a secret in docker/.env is empty, a placeholder or unusable.

A copied .env.example that nobody edited would otherwise be a running deployment with known credentials.
docker/compose.yaml runs this script as the ``secrets-check`` service, which every other service waits
for (``service_completed_successfully``), so no database, broker or Airflow component starts before it
passes. Standard library only: it runs in a bare Python image before anything is built.

Exit 0 when every secret is usable; otherwise exit 1 with one line per problem naming the variable, what
is wrong and the command that makes a good value. Values themselves are never printed (container logs
are not a place for secrets).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

TOKEN_COMMAND = 'python3 -c "import secrets; print(secrets.token_urlsafe(32))"'
FERNET_COMMAND = 'python3 -c "import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())"'
PLACEHOLDER = re.compile(r"change-?me", re.IGNORECASE)
URL_SAFE = re.compile(r"^[A-Za-z0-9._~-]+$")


def _fernet_problem(value: str) -> str | None:
    """Airflow takes a comma-separated list of Fernet keys (rotation): each must be 32 url-safe base64 bytes."""
    for key in value.split(","):
        try:
            decoded = base64.urlsafe_b64decode(key.strip().encode())
        except (binascii.Error, ValueError):
            return "is not url-safe base64 (a Fernet key is 32 random bytes, base64-encoded)"
        if len(decoded) != 32:
            return f"decodes to {len(decoded)} bytes, a Fernet key is 32"
    return None


def _url_safe_problem(value: str) -> str | None:
    """The password is written verbatim into the database URLs: '@', ':', '/' and friends would break them."""
    if URL_SAFE.match(value):
        return None
    return "has characters that break the database URL it is written into (use letters, digits, - _ . ~)"


@dataclass(frozen=True)
class Secret:
    """One secret the stack reads from docker/.env: how long it must be, how to make one, what else to check."""

    name: str
    min_length: int
    generate: str
    extra_check: Callable[[str], str | None] | None = None


SECRETS = (
    Secret("AIRFLOW_ADMIN_PASSWORD", 12, TOKEN_COMMAND),
    Secret("AIRFLOW_JWT_SECRET", 32, TOKEN_COMMAND),
    Secret("POSTGRES_PASSWORD", 16, TOKEN_COMMAND, _url_safe_problem),
    Secret("AIRFLOW_FERNET_KEY", 44, FERNET_COMMAND, _fernet_problem),
)


def problem_with(secret: Secret, value: str | None) -> str | None:
    """What is wrong with one secret's value, or None when it is usable."""
    if not value:
        wrong = "is empty"
    elif PLACEHOLDER.search(value):
        wrong = "is still the placeholder from docker/.env.example"
    elif len(value) < secret.min_length:
        wrong = f"is {len(value)} characters long, at least {secret.min_length} are needed"
    else:
        wrong = secret.extra_check(value) if secret.extra_check else None
    if wrong is None:
        return None
    return f"{secret.name} {wrong}: set it in docker/.env to the output of\n    {secret.generate}"


def problems(environ: Mapping[str, str]) -> list[str]:
    """Every unusable secret in ``environ``, in the order .env.example lists them."""
    found = (problem_with(secret, environ.get(secret.name)) for secret in SECRETS)
    return [problem for problem in found if problem]


def main(environ: Mapping[str, str] | None = None) -> int:
    found = problems(os.environ if environ is None else environ)
    if not found:
        print("secrets ok: " + ", ".join(secret.name for secret in SECRETS))
        return 0
    print(
        f"refusing to start: {len(found)} secret(s) in docker/.env need a real value",
        *found,
        "then run `docker compose -f docker/compose.yaml up` again.",
        sep="\n",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
