"""Local filesystem back-end: atomic writes by temp file + rename, copies by hard link when possible."""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from components.storage.base import ObjectInfo, crc32c_of_file
from components.storage.errors import ObjectNotFound, PreconditionFailed, StorageError


class LocalStorage:
    """Paths are absolute; ``file://`` URIs are accepted and stripped."""

    scheme = "file"

    @staticmethod
    def _path(uri: str) -> str:
        return uri[len("file://") :] if uri.startswith("file://") else uri

    def join(self, base: str, *parts: str) -> str:
        return os.path.join(self._path(base), *parts)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        root = self._path(prefix)
        for folder, _dirs, files in os.walk(root):
            for name in sorted(files):
                path = os.path.join(folder, name)
                try:
                    info = os.stat(path)
                except FileNotFoundError:
                    continue  # removed while listing
                yield ObjectInfo(uri=path, size=info.st_size, generation=info.st_mtime_ns)

    def list_names(self, prefix: str) -> list[str]:
        try:
            return sorted(os.listdir(self._path(prefix)))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StorageError(f"cannot list {prefix}: {exc.strerror}") from exc

    def stat(self, uri: str) -> ObjectInfo | None:
        path = self._path(uri)
        try:
            info = os.stat(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"cannot stat {uri}: {exc.strerror}") from exc
        return ObjectInfo(uri=path, size=info.st_size, generation=info.st_mtime_ns)

    def checksum(self, uri: str) -> str:
        try:
            return crc32c_of_file(self._path(uri))
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"{uri} does not exist") from exc
        except OSError as exc:
            raise StorageError(f"cannot read {uri}: {exc.strerror}") from exc

    def read_bytes(self, uri: str) -> bytes:
        try:
            return Path(self._path(uri)).read_bytes()
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"{uri} does not exist") from exc
        except OSError as exc:
            raise StorageError(f"cannot read {uri}: {exc.strerror}") from exc

    def read_versioned(self, uri: str) -> tuple[bytes, int] | None:
        path = self._path(uri)
        try:
            with open(path, "rb") as handle:
                generation = os.fstat(handle.fileno()).st_mtime_ns
                return handle.read(), generation
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"cannot read {uri}: {exc.strerror}") from exc

    def write_bytes(self, uri: str, data: bytes, *, if_generation_match: int | None = None) -> None:
        path = self._path(uri)
        self._atomic_write(path, lambda handle: handle.write(data), if_generation_match)

    def upload_file(self, local_path: str, uri: str, *, if_generation_match: int | None = None) -> None:
        def copy_into(handle) -> None:
            with open(local_path, "rb") as source:
                shutil.copyfileobj(source, handle, 8 * 1024 * 1024)

        self._atomic_write(self._path(uri), copy_into, if_generation_match)

    def download_file(self, uri: str, local_path: str) -> None:
        self.upload_file(self._path(uri), local_path)

    def copy(self, src_uri: str, dst_uri: str) -> None:
        """Hard link when on the same filesystem (O(1)), else an atomic copy."""
        src, dst = self._path(src_uri), self._path(dst_uri)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        tmp = f"{dst}.tmp-{os.getpid()}"
        try:
            os.link(src, tmp)
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"{src_uri} does not exist") from exc
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise StorageError(f"cannot link {src_uri} to {dst_uri}: {exc.strerror}") from exc
            self.upload_file(src, dst)
            return
        os.replace(tmp, dst)

    def delete(self, uri: str) -> None:
        try:
            os.remove(self._path(uri))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StorageError(f"cannot delete {uri}: {exc.strerror}") from exc

    def delete_prefix(self, prefix: str) -> int:
        root = self._path(prefix)
        count = sum(len(files) for _, _, files in os.walk(root))
        shutil.rmtree(root, ignore_errors=True)
        return count

    def _atomic_write(self, path: str, write, if_generation_match: int | None) -> None:
        folder = os.path.dirname(path) or "."
        try:
            os.makedirs(folder, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
        except OSError as exc:
            raise StorageError(f"cannot write {path}: {exc.strerror}") from exc
        try:
            with os.fdopen(fd, "wb") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            if if_generation_match is None:
                os.replace(tmp, path)
            else:
                self._replace_if_generation(tmp, path, if_generation_match)
        except BaseException as exc:
            if os.path.exists(tmp):
                os.remove(tmp)
            if isinstance(exc, OSError) and not isinstance(exc, StorageError):
                raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from exc
            raise

    @staticmethod
    def _replace_if_generation(tmp: str, path: str, expected: int) -> None:
        """Compare-and-swap under an advisory lock, so two processes cannot both win."""
        with open(f"{path}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                current = os.stat(path).st_mtime_ns
            except FileNotFoundError:
                current = 0
            if current != expected:
                raise PreconditionFailed(f"{path} changed (generation {current}, expected {expected})")
            os.replace(tmp, path)
