"""Names that become directories: strategies, exporters, graphs and versions."""

from __future__ import annotations

import re

from components.export.errors import InvalidNameError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


def validate_name(name: object, what: str = "name") -> str:
    """``name`` itself, or an ``InvalidNameError`` saying why it cannot be a directory.

    Allowed: 1-128 letters, digits, ``_``, ``.``, ``-``, starting with a letter or digit. Refused:
    anything with a path separator, ``..``, and all-digit names (TF Serving would take them for a
    version directory).
    """
    if not isinstance(name, str):
        raise InvalidNameError(f"{what} must be a string, got {type(name).__name__} {name!r}")
    if not _NAME.match(name) or ".." in name:
        raise InvalidNameError(
            f"{what} {name!r} cannot be a directory name: use 1-128 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit and without '..' (e.g. 'serving_latest')"
        )
    if name.isdigit():
        raise InvalidNameError(
            f"{what} {name!r} is all digits, which TF Serving would read as a version directory; "
            f"add a letter (e.g. 'v{name}')"
        )
    return name


def validate_version(version: object) -> str:
    """A TF Serving version directory name: a non-negative integer, as a string."""
    text = str(version)
    if not text.isdigit():
        raise InvalidNameError(
            f"version {version!r} must be a non-negative integer (TF Serving loads only those)"
        )
    return str(int(text))
