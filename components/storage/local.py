"""Local filesystem back-end: atomic writes by temp file + rename, copies by hard link when possible.

* Every write goes to ``.tmp-<name>-<random>`` in the target's folder, is fsynced, then appears in one
  step: ``os.replace`` (unconditional), ``os.link`` (``if_generation_match=0``: create-if-absent, no lock
  file needed — the kernel refuses an existing name), or a compare-and-swap under an ``flock`` taken on
  the file being replaced. A killed writer leaves at most a ``.tmp-*`` file, never a partial object.
* The generation of a file is derived from its mtime and inode: every replace makes a new inode.
* ``write_bytes`` fsyncs before the file appears. ``upload_file`` fsyncs in the uploading thread, right
  after verifying the copy, so the disk writes of one file overlap the copying of the others (measured:
  faster than one flush pass at the end); ``sync`` then only finds clean files and flushes the folders.
  ``StorageOptions.durable = False`` skips both, for destinations that need no crash safety (``cp``
  without ``sync``): a killed process still leaves no partial object, a crashed machine may.
* ``rename_folder`` moves a finished folder into place in one step (the publish protocol's commit on
  local disk: TF Serving must never see a numbered folder that is still being filled); with ``durable``
  both parent folders are flushed, so the new name survives a crash.
* A full disk, a quota or a file-size limit (ENOSPC, EDQUOT, EFBIG) raises ``StorageFull``.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from components.storage.base import ObjectInfo, ProgressCallback, StorageOptions, crc32c_of_file
from components.storage.errors import (
    BucketNotFound,
    ObjectNotFound,
    PreconditionFailed,
    StorageError,
    StorageFull,
    UploadChecksumMismatch,
)

TEMP_PREFIX = ".tmp-"
_COPY_CHUNK = 1024 * 1024  # 1 MiB: bigger reads cost more in page faults than they save in calls
_COPY_STEP = 16 * 1024 * 1024  # kernel copies between progress reports
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def generation_of(info: os.stat_result) -> int:
    """A positive number that changes whenever the file at a path is replaced (new inode or new mtime)."""
    return (info.st_mtime_ns << 24) | (info.st_ino & 0xFFFFFF) or 1


def _os_error(action: str, path: str, exc: OSError) -> StorageError:
    message = f"cannot {action} {path}: {exc.strerror or exc}"
    if exc.errno in _FULL:
        return StorageFull(message)
    if isinstance(exc, FileNotFoundError):
        return ObjectNotFound(message)
    return StorageError(message)


class LocalStorage:
    """Paths are absolute; ``file://`` URIs are accepted and stripped."""

    scheme = "file"

    def __init__(self, options: StorageOptions | None = None) -> None:
        self.durable = options.durable if options is not None else True

    @staticmethod
    def _path(uri: str) -> str:
        return uri.removeprefix("file://")

    def join(self, base: str, *parts: str) -> str:
        return os.path.join(self._path(base), *parts)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        root = self._path(prefix)
        for folder, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(folder, name)
                try:
                    info = os.stat(path)
                except FileNotFoundError:
                    continue  # removed while listing
                yield ObjectInfo(uri=path, size=info.st_size, generation=generation_of(info))

    def list_names(self, prefix: str) -> list[str]:
        try:
            return sorted(os.listdir(self._path(prefix)))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StorageError(f"cannot list {prefix}: {exc.strerror}") from exc

    def list_files(self, prefix: str) -> list[ObjectInfo]:
        infos = []
        try:
            with os.scandir(self._path(prefix)) as entries:
                for entry in entries:
                    try:
                        if entry.is_file():
                            info = entry.stat()  # fstatat on the open folder: no path walk per file
                            infos.append(ObjectInfo(entry.path, info.st_size, generation=generation_of(info)))
                    except FileNotFoundError:
                        continue  # removed while listing
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StorageError(f"cannot list {prefix}: {exc.strerror}") from exc
        return infos

    def stat(self, uri: str) -> ObjectInfo | None:
        path = self._path(uri)
        try:
            info = os.stat(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"cannot stat {uri}: {exc.strerror}") from exc
        return ObjectInfo(uri=path, size=info.st_size, generation=generation_of(info))

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

    def read_range(self, uri: str, start: int, length: int) -> bytes:
        try:
            with open(self._path(uri), "rb") as handle:
                handle.seek(start)
                return handle.read(max(length, 0))
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"{uri} does not exist") from exc
        except OSError as exc:
            raise StorageError(f"cannot read {uri}: {exc.strerror}") from exc

    def read_versioned(self, uri: str) -> tuple[bytes, int] | None:
        path = self._path(uri)
        try:
            with open(path, "rb") as handle:
                generation = generation_of(os.fstat(handle.fileno()))
                return handle.read(), generation
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"cannot read {uri}: {exc.strerror}") from exc

    def write_bytes(self, uri: str, data: bytes, *, if_generation_match: int | None = None) -> ObjectInfo:
        from components.storage.base import crc32c_of_bytes

        path = self._path(uri)
        generation = self._atomic_write(path, lambda handle: handle.write(data), if_generation_match, durable=True)
        return ObjectInfo(path, len(data), crc32c_of_bytes(data), generation)

    def upload_file(
        self,
        local_path: str,
        uri: str,
        *,
        if_generation_match: int | None = None,
        crc32c: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> ObjectInfo:
        """Copy ``local_path`` in (in the kernel), then checksum the copy itself; a mismatch with
        ``crc32c`` leaves nothing behind."""
        path = self._path(uri)
        size = 0
        actual = ""

        def copy_into(handle: BinaryIO) -> None:
            nonlocal size, actual
            try:
                with open(local_path, "rb") as source:
                    size = _copy_file(source, handle, progress)
            except FileNotFoundError as exc:
                if not os.path.exists(local_path):
                    raise ObjectNotFound(f"{local_path} does not exist") from exc
                raise
            handle.flush()
            actual = _crc32c_of_fd(handle.fileno(), size)  # the bytes that landed, read back
            if crc32c is not None and actual != crc32c:
                raise UploadChecksumMismatch(f"{local_path} copied with crc32c {actual}, expected {crc32c}")

        generation = self._atomic_write(path, copy_into, if_generation_match, durable=self.durable)
        return ObjectInfo(path, size, actual, generation)

    def download_file(self, uri: str, local_path: str) -> None:
        self.upload_file(self._path(uri), local_path)

    def sync(self, uris: Iterable[str]) -> None:
        """fsync every file, then every folder holding one (so the names are durable too)."""
        from concurrent.futures import ThreadPoolExecutor

        if not self.durable:
            return
        paths = sorted({self._path(u) for u in uris})
        folders = sorted({os.path.dirname(p) for p in paths})
        with ThreadPoolExecutor(max_workers=8, thread_name_prefix="fsync") as pool:
            for failure in pool.map(_fsync_path, [*paths]):
                if failure is not None:
                    raise failure
            for failure in pool.map(_fsync_path, folders):
                if failure is not None:
                    raise failure

    def copy(self, src_uri: str, dst_uri: str, *, if_generation_match: int | None = None) -> ObjectInfo:
        """Hard link when on the same filesystem (O(1), ``crc32c`` None), else an atomic copy."""
        src, dst = self._path(src_uri), self._path(dst_uri)
        folder = os.path.dirname(dst) or "."
        try:
            os.makedirs(folder, exist_ok=True)
            if if_generation_match == 0:
                os.link(src, dst)  # create-if-absent in one step
            else:
                tmp = os.path.join(folder, f"{TEMP_PREFIX}{os.path.basename(dst)}-{secrets.token_hex(4)}")
                os.link(src, tmp)
                try:
                    self._install(tmp, dst, if_generation_match)
                except BaseException:
                    _remove_quietly(tmp)
                    raise
            info = os.stat(dst)
        except FileExistsError as exc:
            raise PreconditionFailed(f"{dst_uri} already exists") from exc
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"{src_uri} does not exist") from exc
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise _os_error(f"link {src_uri} to", dst_uri, exc) from exc
            return self.upload_file(src, dst, if_generation_match=if_generation_match)
        return ObjectInfo(dst, info.st_size, None, generation_of(info))

    def rename_folder(self, src_uri: str, dst_uri: str) -> None:
        """Move the folder ``src_uri`` to ``dst_uri`` atomically (same filesystem). An existing non-empty
        ``dst_uri`` is never replaced: ``PreconditionFailed``. Missing parents of ``dst_uri`` are created."""
        src, dst = self._path(src_uri), self._path(dst_uri)
        created = _missing_parents(os.path.dirname(dst))
        try:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            os.rename(src, dst)
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"cannot move {src_uri} to {dst_uri}: {exc.strerror}") from exc
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                raise PreconditionFailed(f"{dst_uri} already exists; not replacing it with {src_uri}") from exc
            raise _os_error(f"move {src_uri} to", dst_uri, exc) from exc
        if self.durable:  # the new name, the old one, and every folder created on the way
            for folder in sorted({os.path.dirname(dst), os.path.dirname(src), *(os.path.dirname(c) for c in created)}):
                failure = _fsync_path(folder)
                if failure is not None:
                    raise failure

    def delete(self, uri: str, *, if_generation_match: int | None = None) -> None:
        path = self._path(uri)
        try:
            if if_generation_match is None:
                os.remove(path)
            else:
                with _locked(path, if_generation_match):
                    os.remove(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StorageError(f"cannot delete {uri}: {exc.strerror}") from exc

    def delete_prefix(self, prefix: str) -> int:
        root = self._path(prefix)
        count = sum(len(files) for _, _, files in os.walk(root))
        shutil.rmtree(root, ignore_errors=True)
        return count

    def _atomic_write(
        self, path: str, write: Callable[[BinaryIO], object], if_generation_match: int | None, *, durable: bool
    ) -> int:
        folder = os.path.dirname(path) or "."
        try:
            os.makedirs(folder, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{os.path.basename(path)}-", dir=folder)
        except FileNotFoundError as exc:
            raise BucketNotFound(f"cannot write {path}: {exc.strerror}") from exc
        except OSError as exc:
            raise _os_error("write", path, exc) from exc
        try:
            with os.fdopen(fd, "wb") as handle:
                write(handle)
                handle.flush()
                if durable:
                    os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
            self._install(tmp, path, if_generation_match)
            return generation_of(os.stat(path))
        except BaseException as exc:
            _remove_quietly(tmp)
            if isinstance(exc, OSError) and not isinstance(exc, StorageError):
                raise _os_error("write", path, exc) from exc
            raise

    @staticmethod
    def _install(tmp: str, path: str, if_generation_match: int | None) -> None:
        """Move the finished temp file to ``path`` under the requested precondition."""
        if if_generation_match is None:
            os.replace(tmp, path)
        elif if_generation_match == 0:
            try:
                os.link(tmp, path)
            except FileExistsError as exc:
                raise PreconditionFailed(f"{path} already exists") from exc
            os.remove(tmp)
        else:
            with _locked(path, if_generation_match):
                os.replace(tmp, path)


class _locked:
    """Hold an ``flock`` on the file at ``path`` and check it is still generation ``expected``.

    The lock sits on the inode being replaced, so two writers that both saw ``expected`` serialise here
    and the second one finds a new inode. No lock file is left behind.
    """

    def __init__(self, path: str, expected: int) -> None:
        self.path, self.expected = path, expected
        self.fd: int | None = None

    def __enter__(self) -> None:
        try:
            self.fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError as exc:
            raise PreconditionFailed(f"{self.path} is gone (expected generation {self.expected})") from exc
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            current = None
        locked = os.fstat(self.fd)
        if current is None or current.st_ino != locked.st_ino or generation_of(current) != self.expected:
            found = generation_of(current) if current is not None else 0
            self.__exit__()
            raise PreconditionFailed(f"{self.path} changed (generation {found}, expected {self.expected})")

    def __exit__(self, *exc_info: object) -> None:
        if self.fd is not None:
            os.close(self.fd)  # releases the flock
            self.fd = None


def _copy_file(source: BinaryIO, target: BinaryIO, progress: ProgressCallback | None) -> int:
    """Copy in the kernel (``copy_file_range``: no bytes through this process), in steps that report
    progress; plain reads and writes where the kernel cannot (another filesystem type, old kernels)."""
    copied = 0
    try:
        while step := os.copy_file_range(source.fileno(), target.fileno(), _COPY_STEP):
            copied += step
            if progress is not None:
                progress(step)
        return copied
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP) or copied:
            raise
    while chunk := source.read(_COPY_CHUNK):
        target.write(chunk)
        copied += len(chunk)
        if progress is not None:
            progress(len(chunk))
    return copied


def _crc32c_of_fd(fd: int, size: int) -> str:
    """CRC32C of the first ``size`` bytes of an open (readable) file, without moving its offset."""
    import base64

    import google_crc32c

    checksum = google_crc32c.Checksum()
    offset = 0
    while offset < size and (chunk := os.pread(fd, min(_COPY_CHUNK, size - offset), offset)):
        checksum.update(chunk)
        offset += len(chunk)
    return base64.b64encode(checksum.digest()).decode("ascii")


def _fsync_path(path: str) -> StorageError | None:
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        return _os_error("flush", path, exc)
    return None


def _missing_parents(folder: str) -> list[str]:
    """``folder`` and its ancestors that do not exist yet, deepest first."""
    missing = []
    while folder and not os.path.exists(folder) and os.path.dirname(folder) != folder:
        missing.append(folder)
        folder = os.path.dirname(folder)
    return missing


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
