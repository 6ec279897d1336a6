"""Google Cloud Storage back-end on google-cloud-storage.

The client is built lazily (first call), never at import. Credentials: Application Default Credentials,
or a service-account key file, or anonymous when ``STORAGE_EMULATOR_HOST`` points at an emulator. Retries
use the SDK's own policies (transient errors only, never 401/403); conditional writes send
``if_generation_match`` so real GCS rejects a concurrent writer.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from components.storage.base import ObjectInfo
from components.storage.errors import ObjectNotFound, PreconditionFailed, StorageError, TransientStorageError

T = TypeVar("T")
_TIMEOUT = (10, 120)  # connect, read seconds


def split_gcs_uri(uri: str) -> tuple[str, str]:
    """``gs://bucket/a/b`` → ``("bucket", "a/b")``; malformed URIs get an error that shows the form."""
    if not uri.startswith("gs://"):
        raise StorageError(f"{uri!r} is not a GCS URI; expected gs://<bucket>/<path>")
    bucket, _, key = uri[len("gs://") :].partition("/")
    if not bucket:
        raise StorageError(f"{uri!r} has no bucket; expected gs://<bucket>/<path>")
    return bucket, key


def _wrap_errors(func: Callable[..., T]) -> Callable[..., T]:
    """Translate google.api_core exceptions into the storage error family, once, at the boundary."""

    @functools.wraps(func)
    def wrapper(self: GCSStorage, *args: Any, **kwargs: Any) -> T:
        from google.api_core import exceptions as gexc

        try:
            return func(self, *args, **kwargs)
        except gexc.NotFound as exc:
            raise ObjectNotFound(f"{args[0] if args else ''}: not found ({exc.message})") from exc
        except gexc.PreconditionFailed as exc:
            raise PreconditionFailed(f"{args[0] if args else ''}: precondition failed") from exc
        except (gexc.ServiceUnavailable, gexc.InternalServerError, gexc.TooManyRequests) as exc:
            raise TransientStorageError(f"GCS unavailable: {exc.message}") from exc
        except (gexc.Forbidden, gexc.Unauthorized) as exc:
            raise StorageError(f"GCS refused access: {exc.message}; check the credentials' IAM roles") from exc
        except gexc.GoogleAPIError as exc:
            raise StorageError(f"GCS error: {exc}") from exc
        except (ConnectionError, TimeoutError) as exc:
            raise TransientStorageError(f"GCS connection failed: {exc}") from exc

    return wrapper


class GCSStorage:
    """URIs are ``gs://bucket/key``."""

    scheme = "gs"

    def __init__(self, project: str | None = None, credentials_path: str | None = None) -> None:
        self._project = project
        self._credentials_path = credentials_path
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            from google.cloud import storage

            if os.environ.get("STORAGE_EMULATOR_HOST"):
                from google.auth.credentials import AnonymousCredentials

                self._client = storage.Client(
                    project=self._project or "exportflow-test", credentials=AnonymousCredentials()
                )
            elif self._credentials_path:
                self._client = storage.Client.from_service_account_json(
                    self._credentials_path, project=self._project
                )
            else:
                self._client = storage.Client(project=self._project)
        return self._client

    def _blob(self, uri: str) -> Any:
        bucket, key = split_gcs_uri(uri)
        return self.client.bucket(bucket).blob(key)

    def join(self, base: str, *parts: str) -> str:
        return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])

    @_wrap_errors
    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        bucket, key = split_gcs_uri(prefix)
        key = key.rstrip("/") + "/" if key else ""
        for blob in self.client.list_blobs(bucket, prefix=key, timeout=_TIMEOUT):
            yield ObjectInfo(f"gs://{bucket}/{blob.name}", blob.size or 0, blob.crc32c, blob.generation)

    @_wrap_errors
    def list_names(self, prefix: str) -> list[str]:
        bucket, key = split_gcs_uri(prefix)
        key = key.rstrip("/") + "/" if key else ""
        pages = self.client.list_blobs(bucket, prefix=key, delimiter="/", timeout=_TIMEOUT)
        names = [blob.name[len(key) :] for blob in pages]
        names += [p[len(key) :].rstrip("/") for p in pages.prefixes]
        return sorted(names)

    @_wrap_errors
    def stat(self, uri: str) -> ObjectInfo | None:
        bucket, key = split_gcs_uri(uri)
        blob = self.client.bucket(bucket).get_blob(key, timeout=_TIMEOUT)
        if blob is None:
            return None
        return ObjectInfo(uri, blob.size or 0, blob.crc32c, blob.generation)

    def checksum(self, uri: str) -> str:
        info = self.stat(uri)
        if info is None:
            raise ObjectNotFound(f"{uri} does not exist")
        if info.crc32c is None:
            raise StorageError(f"{uri} reports no crc32c")
        return info.crc32c

    @_wrap_errors
    def read_bytes(self, uri: str) -> bytes:
        return self._blob(uri).download_as_bytes(timeout=_TIMEOUT)

    @_wrap_errors
    def read_versioned(self, uri: str) -> tuple[bytes, int] | None:
        bucket, key = split_gcs_uri(uri)
        blob = self.client.bucket(bucket).get_blob(key, timeout=_TIMEOUT)
        if blob is None:
            return None
        data = blob.download_as_bytes(if_generation_match=blob.generation, timeout=_TIMEOUT)
        return data, int(blob.generation)

    @_wrap_errors
    def write_bytes(self, uri: str, data: bytes, *, if_generation_match: int | None = None) -> None:
        from google.cloud.storage.retry import DEFAULT_RETRY

        self._blob(uri).upload_from_string(
            data,
            if_generation_match=if_generation_match,
            retry=DEFAULT_RETRY if if_generation_match is not None else None,
            checksum="crc32c",
            timeout=_TIMEOUT,
        )

    @_wrap_errors
    def upload_file(self, local_path: str, uri: str, *, if_generation_match: int | None = None) -> None:
        from google.cloud.storage.retry import DEFAULT_RETRY

        blob = self._blob(uri)
        blob.chunk_size = 32 * 1024 * 1024  # a multiple of 256 KiB, as resumable uploads require
        blob.upload_from_filename(
            local_path,
            if_generation_match=if_generation_match,
            retry=DEFAULT_RETRY if if_generation_match is not None else None,
            checksum="crc32c",
            timeout=_TIMEOUT,
        )

    @_wrap_errors
    def download_file(self, uri: str, local_path: str) -> None:
        os.makedirs(os.path.dirname(local_path) or ".", exist_ok=True)
        tmp = f"{local_path}.part"
        self._blob(uri).download_to_filename(tmp, checksum="crc32c", timeout=_TIMEOUT)
        os.replace(tmp, local_path)

    @_wrap_errors
    def copy(self, src_uri: str, dst_uri: str) -> None:
        """Server-side rewrite: no bytes pass through this process."""
        src = self._blob(src_uri)
        dst = self._blob(dst_uri)
        token, _, _ = dst.rewrite(src, timeout=_TIMEOUT)
        while token is not None:
            token, _, _ = dst.rewrite(src, token=token, timeout=_TIMEOUT)

    @_wrap_errors
    def delete(self, uri: str) -> None:
        from google.api_core.exceptions import NotFound

        try:
            self._blob(uri).delete(timeout=_TIMEOUT)
        except NotFound:
            pass

    def delete_prefix(self, prefix: str) -> int:
        infos = list(self.list(prefix))
        for info in infos:
            self.delete(info.uri)
        return len(infos)
