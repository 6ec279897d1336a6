"""``assets_extra``: files copied into ``<export>/assets.extra/`` under keys relative to that folder.

As in tf.estimator, ``{"vocab/ids.txt": "/data/ids.txt"}`` copies one file. Unlike tf.estimator, a key
cannot write outside ``assets.extra``: absolute keys, ``..`` components and paths that reach through a
symlink to somewhere else are refused, and two keys naming the same file are a collision.
"""

from __future__ import annotations

import os
import posixpath
import shutil
from collections.abc import Mapping

from components.export.errors import UnsafeAssetPathError
from components.layout import ASSETS_EXTRA


def normalize_assets_extra(assets_extra: Mapping[str, str] | None) -> dict[str, str]:
    """Validated ``{relative key: source path}``; raises ``UnsafeAssetPathError`` naming the bad key."""
    if not assets_extra:
        return {}
    if not isinstance(assets_extra, Mapping):
        raise UnsafeAssetPathError(
            f"assets_extra must be a mapping of relative path -> source file, got {type(assets_extra).__name__}"
        )
    out: dict[str, str] = {}
    for key, source in assets_extra.items():
        rel = _safe_key(key)
        if rel in out:
            raise UnsafeAssetPathError(f"assets_extra keys {key!r} and another key both name {rel!r}")
        source = os.fspath(source)
        if not os.path.isfile(source):
            raise UnsafeAssetPathError(f"assets_extra[{key!r}]: source {source!r} is not an existing file")
        out[rel] = source
    return out


def _safe_key(key: object) -> str:
    if not isinstance(key, str) or not key or "\x00" in key:
        raise UnsafeAssetPathError(f"assets_extra key {key!r} must be a non-empty relative path")
    if key.startswith(("/", "\\")) or os.path.isabs(key) or (len(key) > 1 and key[1] == ":"):
        raise UnsafeAssetPathError(
            f"assets_extra key {key!r} is absolute; keys are paths relative to {ASSETS_EXTRA}/"
        )
    parts = key.replace("\\", "/").split("/")
    if ".." in parts:
        raise UnsafeAssetPathError(f"assets_extra key {key!r} climbs out of {ASSETS_EXTRA}/ with '..'")
    rel = posixpath.normpath("/".join(p for p in parts if p not in ("", ".")))
    if rel in ("", "."):
        raise UnsafeAssetPathError(f"assets_extra key {key!r} names no file")
    return rel


def copy_assets_extra(export_dir: str, assets_extra: Mapping[str, str] | None) -> list[str]:
    """Copy the validated assets into ``export_dir/assets.extra``; return the relative keys written."""
    assets = normalize_assets_extra(assets_extra)
    if not assets:
        return []
    root = os.path.join(export_dir, ASSETS_EXTRA)
    os.makedirs(root, exist_ok=True)
    real_root = os.path.realpath(root)
    for rel, source in assets.items():
        target = os.path.join(root, *rel.split("/"))
        parent = os.path.dirname(target)
        _check_inside(real_root, parent, rel)
        os.makedirs(parent, exist_ok=True)
        _check_inside(real_root, parent, rel)  # a component may have appeared as a symlink meanwhile
        if os.path.islink(target):
            raise UnsafeAssetPathError(
                f"assets_extra key {rel!r} names an existing symlink in {ASSETS_EXTRA}/"
            )
        shutil.copyfile(source, target)
    return sorted(assets)


def _check_inside(real_root: str, path: str, rel: str) -> None:
    real = os.path.realpath(path)
    if real != real_root and not real.startswith(real_root + os.sep):
        raise UnsafeAssetPathError(
            f"assets_extra key {rel!r} resolves through a symlink to {real}, outside {ASSETS_EXTRA}/"
        )
