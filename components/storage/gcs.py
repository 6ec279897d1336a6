"""Google Cloud Storage back-end on google-cloud-storage.

* The client is built lazily (first call), never at import, once per process and options; it is shared
  by the transfer threads (its HTTP pool is sized by ``StorageOptions.pool_size``).
* Credentials: a service-account key file, or credentials from a source (an Airflow connection), or
  Application Default Credentials; anonymous when ``STORAGE_EMULATOR_HOST`` points at an emulator,
  except for a source's credentials (see ``StorageOptions``). A key's contents never reach a log or an
  error.
* Retries use the SDK's own policy (``DEFAULT_RETRY``: 429, 408, 5xx and connection errors only — never
  401/403) with the deadline from the options, on calls that are safe to repeat: every read, and writes
  that carry a generation precondition (a repeated ``if_generation_match=0`` create cannot clobber
  anyone; on real GCS a create whose first response was lost comes back 412, which the caller resolves
  by comparing checksums). Unconditional writes are not retried.
* Uploads above 8 MiB are resumable, in ``chunk_size`` pieces (a multiple of 256 KiB); with an expected
  CRC32C the object metadata carries it, so the server refuses content that does not match.
* Errors are wrapped once, here, into the storage error family.
"""

from __future__ import annotations

import functools
import io
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from components.storage.base import ObjectInfo, ProgressCallback, StorageOptions
from components.storage.errors import (
    BucketNotFound,
    InvalidURI,
    ObjectNotFound,
    PreconditionFailed,
    StorageError,
    TransientStorageError,
    UploadChecksumMismatch,
    UploadSessionLost,
)

T = TypeVar("T")
_SIDE_CALLS = 4  # connections beyond pool_size for calls that run beside a full pool of transfers
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._\-]{1,220}[a-z0-9]$")


def split_gcs_uri(uri: str) -> tuple[str, str]:
    """``gs://bucket/a/b`` → ``("bucket", "a/b")``; malformed URIs get an error that shows the form."""
    if not uri.startswith("gs://"):
        raise InvalidURI(f"{uri!r} is not a GCS URI; expected gs://<bucket>/<path>")
    bucket, _, key = uri[len("gs://") :].partition("/")
    if not bucket:
        raise InvalidURI(f"{uri!r} has no bucket; expected gs://<bucket>/<path>")
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise InvalidURI(
            f"{uri!r}: {bucket!r} is not a valid bucket name (3-222 characters: lowercase letters, digits, "
            "'-', '_' and '.', starting and ending with a letter or digit)"
        )
    if "//" in key or any(part in (".", "..") for part in key.split("/")):
        raise InvalidURI(f"{uri!r} has an empty, '.' or '..' path segment; expected gs://<bucket>/<a>/<b>")
    return bucket, key


def _wrap_errors(not_found: type[ObjectNotFound] = ObjectNotFound) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Translate the SDK's exceptions into the storage error family, once, at the boundary.

    ``not_found`` is what a 404 means for the call: a missing object for reads, a missing bucket for
    listings and writes.
    """

    def decorate(func: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(func)
        def wrapper(self: GCSStorage, *args: Any, **kwargs: Any) -> T:
            import requests
            from google.api_core import exceptions as gexc
            from google.auth import exceptions as auth_exc
            from google.cloud.storage.exceptions import DataCorruption, InvalidResponse

            where = args[1] if func.__name__ in ("upload_file", "copy") and len(args) > 1 else (args[0] if args else "")
            try:
                return func(self, *args, **kwargs)
            except gexc.NotFound as exc:
                if not_found is BucketNotFound and str(where).startswith("gs://"):
                    bucket = str(where)[len("gs://") :].partition("/")[0]
                    raise BucketNotFound(f"bucket {bucket!r} does not exist (or these credentials cannot see it)") from exc
                raise not_found(f"{where}: not found ({_reason(exc)})") from exc
            except gexc.PreconditionFailed as exc:
                raise PreconditionFailed(f"{where}: precondition failed (another writer got there first)") from exc
            except (gexc.TooManyRequests, gexc.ServerError, gexc.RetryError) as exc:
                raise TransientStorageError(f"GCS unavailable for {where}: {_reason(exc)}") from exc
            except (gexc.Forbidden, gexc.Unauthorized) as exc:
                raise StorageError(f"GCS refused access to {where}: {_reason(exc)}; check the credentials' IAM roles") from exc
            except gexc.BadRequest as exc:
                if _is_checksum_refusal(exc):
                    raise UploadChecksumMismatch(f"{where}: GCS refused the content: {_reason(exc)}") from exc
                raise StorageError(f"GCS rejected the request for {where}: {_reason(exc)}") from exc
            except gexc.GoogleAPIError as exc:
                if getattr(exc, "code", None) == 408:
                    raise TransientStorageError(f"GCS timed out on {where}: {_reason(exc)}") from exc
                raise StorageError(f"GCS error for {where}: {_reason(exc)}") from exc
            except DataCorruption as exc:
                raise UploadChecksumMismatch(f"{where}: checksum mismatch in transit: {exc}") from exc
            except InvalidResponse as exc:
                status = getattr(exc.response, "status_code", 0)
                kind = TransientStorageError if status in (408, 429) or status >= 500 else StorageError
                raise kind(f"GCS answered {status} for {where}") from exc
            except (auth_exc.RefreshError, auth_exc.InvalidOperation) as exc:
                # A 401 makes the transport refresh the token once; failing that, access is refused.
                raise StorageError(
                    f"GCS refused access to {where}: the credentials were rejected and could not be refreshed"
                ) from exc
            except auth_exc.DefaultCredentialsError as exc:
                raise StorageError(
                    "no Google credentials: run `gcloud auth application-default login`, or set "
                    "destination.credentials_path to a service-account key file"
                ) from exc
            except (requests.RequestException, ConnectionError, TimeoutError) as exc:
                raise TransientStorageError(f"GCS connection failed for {where}: {type(exc).__name__}") from exc

        return wrapper

    return decorate


def _is_checksum_refusal(exc: Any) -> bool:
    text = str(exc).lower()
    return getattr(exc, "code", None) == 400 and ("crc32c" in text or "checksum" in text)


def _reason(exc: Any) -> str:
    return str(getattr(exc, "message", None) or exc).splitlines()[0][:300]


class _ProgressReader(io.RawIOBase):
    """A read-only file wrapper that reports how far into the file the SDK has read (not re-reads)."""

    def __init__(self, handle: io.BufferedReader, progress: ProgressCallback) -> None:
        super().__init__()
        self._handle, self._progress, self._high = handle, progress, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        position = self._handle.tell()
        if position > self._high:
            self._progress(position - self._high)
            self._high = position
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._handle.seek(offset, whence)

    def tell(self) -> int:
        return self._handle.tell()


class GCSStorage:
    """URIs are ``gs://bucket/key``."""

    scheme = "gs"

    def __init__(
        self,
        project: str | None = None,
        credentials_path: str | None = None,
        *,
        options: StorageOptions | None = None,
    ) -> None:
        self.options = options or StorageOptions(project=project, credentials_path=credentials_path)
        self._client: Any = None
        self._client_lock = threading.Lock()

    def __repr__(self) -> str:  # never shows credentials, only where they come from
        return f"GCSStorage(project={self.options.project!r}, credentials={self.credentials_origin()})"

    def credentials_origin(self) -> str:
        """Where this back-end's credentials come from (the order ``StorageOptions`` documents)."""
        emulated = bool(os.environ.get("STORAGE_EMULATOR_HOST"))
        if self.options.credentials_path:
            return "emulator (anonymous)" if emulated else "key file"
        if self.options.credentials is not None:
            return self.options.credentials.describe()
        return "emulator (anonymous)" if emulated else "ADC"

    @property
    def client(self) -> Any:
        with self._client_lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def _make_client(self) -> Any:
        import requests
        from google.cloud import storage

        project = self.options.project
        credentials = self.client_credentials()
        if os.environ.get("STORAGE_EMULATOR_HOST"):
            project = project or "exportflow-test"
        # credentials None: ADC, found by the client; a missing one is reported by _wrap_errors
        client = storage.Client(project=project, credentials=credentials)
        # A full pool of transfers plus the few calls beside them (the lock's heartbeat, a listing) keep
        # their connections instead of opening throwaways.
        size = self.options.pool_size + _SIDE_CALLS
        adapter = requests.adapters.HTTPAdapter(pool_connections=size, pool_maxsize=size)
        client._http.mount("https://", adapter)  # the SDK's own session; bigger pool for parallel transfers
        client._http.mount("http://", adapter)
        return client

    def client_credentials(self) -> Any:
        """The credentials the client is built with; ``None`` lets the client find ADC."""
        emulated = bool(os.environ.get("STORAGE_EMULATOR_HOST"))
        if self.options.credentials_path and not emulated:
            return self._key_file_credentials()
        if self.options.credentials is not None and not self.options.credentials_path:
            return self.options.credentials.google_credentials()
        if emulated:
            from google.auth.credentials import AnonymousCredentials

            return AnonymousCredentials()
        return None

    def _key_file_credentials(self) -> Any:
        from google.oauth2 import service_account

        path = self.options.credentials_path
        try:
            return service_account.Credentials.from_service_account_file(
                path, scopes=["https://www.googleapis.com/auth/devstorage.read_write"]
            )
        except FileNotFoundError:
            raise StorageError(f"service-account key file {path} does not exist") from None
        except (ValueError, KeyError, TypeError):
            # ``from None``: the parser's exception may carry the key's text.
            raise StorageError(f"{path} is not a valid service-account key file (JSON with a private key)") from None

    @property
    def retry(self) -> Any:
        """The SDK's default policy (transient errors only) with our deadline and first delay."""
        from google.cloud.storage.retry import DEFAULT_RETRY

        return DEFAULT_RETRY.with_timeout(self.options.retry_deadline).with_delay(
            initial=self.options.retry_initial_delay, maximum=60.0, multiplier=2.0
        )

    def _write_retry(self, if_generation_match: int | None) -> Any:
        """Writes are retried only when a precondition makes them idempotent."""
        return self.retry if if_generation_match is not None else None

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.options.connect_timeout, self.options.timeout)

    def _blob(self, uri: str) -> Any:
        bucket, key = split_gcs_uri(uri)
        if not key:
            raise InvalidURI(f"{uri!r} names a bucket, not an object")
        return self.client.bucket(bucket).blob(key)

    @staticmethod
    def _info(uri: str, blob: Any) -> ObjectInfo:
        return ObjectInfo(uri, int(blob.size or 0), blob.crc32c, int(blob.generation) if blob.generation else None)

    def join(self, base: str, *parts: str) -> str:
        return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        bucket, key = split_gcs_uri(prefix)
        key = key.rstrip("/") + "/" if key else ""
        # Listing is lazy (pages); wrap each page fetch, not just the call that builds the iterator.
        yield from _wrap_errors(BucketNotFound)(GCSStorage._list_all)(self, prefix, bucket, key)

    def _list_all(self, prefix: str, bucket: str, key: str) -> list[ObjectInfo]:
        blobs = self.client.list_blobs(bucket, prefix=key, timeout=self.timeout, retry=self.retry)
        return [self._info(f"gs://{bucket}/{blob.name}", blob) for blob in blobs]

    @_wrap_errors(BucketNotFound)
    def list_names(self, prefix: str) -> list[str]:
        bucket, key = split_gcs_uri(prefix)
        key = key.rstrip("/") + "/" if key else ""
        pages = self.client.list_blobs(bucket, prefix=key, delimiter="/", timeout=self.timeout, retry=self.retry)
        names = [blob.name[len(key) :] for blob in pages]
        names += [p[len(key) :].rstrip("/") for p in pages.prefixes]
        return sorted(names)

    @_wrap_errors(BucketNotFound)
    def list_files(self, prefix: str) -> list[ObjectInfo]:
        bucket, key = split_gcs_uri(prefix)
        key = key.rstrip("/") + "/" if key else ""
        blobs = self.client.list_blobs(
            bucket, prefix=key, delimiter="/", timeout=self.timeout, retry=self.retry,
            fields="items(name,size,crc32c,generation),prefixes,nextPageToken",
        )
        return [self._info(f"gs://{bucket}/{blob.name}", blob) for blob in blobs]

    @_wrap_errors()
    def stat(self, uri: str) -> ObjectInfo | None:
        bucket, key = split_gcs_uri(uri)
        blob = self.client.bucket(bucket).get_blob(key, timeout=self.timeout, retry=self.retry)
        return None if blob is None else self._info(uri, blob)

    def checksum(self, uri: str) -> str:
        info = self.stat(uri)
        if info is None:
            raise ObjectNotFound(f"{uri} does not exist")
        if info.crc32c is None:
            raise StorageError(f"{uri} reports no crc32c")
        return info.crc32c

    @_wrap_errors()
    def read_bytes(self, uri: str) -> bytes:
        return self._blob(uri).download_as_bytes(timeout=self.timeout, retry=self.retry)

    @_wrap_errors()
    def read_range(self, uri: str, start: int, length: int) -> bytes:
        if length <= 0:
            return b""
        blob = self._blob(uri)
        return blob.download_as_bytes(start=start, end=start + length - 1, timeout=self.timeout, retry=self.retry)

    @_wrap_errors()
    def read_versioned(self, uri: str) -> tuple[bytes, int] | None:
        bucket, key = split_gcs_uri(uri)
        blob = self.client.bucket(bucket).get_blob(key, timeout=self.timeout, retry=self.retry)
        if blob is None:
            return None
        generation = int(blob.generation)  # read first: the download refreshes properties from headers
        data = blob.download_as_bytes(if_generation_match=generation, timeout=self.timeout, retry=self.retry)
        return data, generation

    @_wrap_errors(BucketNotFound)
    def write_bytes(self, uri: str, data: bytes, *, if_generation_match: int | None = None) -> ObjectInfo:
        blob = self._blob(uri)
        blob.upload_from_string(
            data,
            if_generation_match=if_generation_match,
            retry=self._write_retry(if_generation_match),
            checksum="crc32c",
            timeout=self.timeout,
        )
        return self._info(uri, blob)

    @_wrap_errors(BucketNotFound)
    def upload_file(
        self,
        local_path: str,
        uri: str,
        *,
        if_generation_match: int | None = None,
        crc32c: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> ObjectInfo:
        blob = self._blob(uri)
        blob.chunk_size = self.options.chunk_size
        if crc32c is not None:
            blob.crc32c = crc32c  # sent as object metadata: GCS refuses bytes that do not match it
        try:
            handle = open(local_path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"{local_path} does not exist") from exc
        from google.api_core import exceptions as gexc

        with handle:
            size = os.fstat(handle.fileno()).st_size
            stream = _ProgressReader(handle, progress) if progress is not None else handle
            try:
                blob.upload_from_file(
                    stream,
                    size=size,
                    if_generation_match=if_generation_match,
                    # With an expected crc32c the server checks it; otherwise the SDK checksums in transit.
                    checksum=None if crc32c is not None else "crc32c",
                    retry=self._write_retry(if_generation_match),
                    timeout=self.timeout,
                )
            except gexc.GoogleAPICallError as exc:
                request = getattr(getattr(exc, "response", None), "request", None)
                if _is_checksum_refusal(exc):
                    raise UploadChecksumMismatch(f"{uri}: GCS refused the content: {_reason(exc)}") from exc
                if exc.code in (400, 404, 410) and "upload_id=" in str(getattr(request, "url", "")):
                    # GCS: a 404/410 on the session URL means it expired; a chunk the server already has
                    # (a retry after a lost answer) can upset a server that keeps no overlap.
                    raise UploadSessionLost(f"{uri}: the resumable upload session was lost ({_reason(exc)})") from exc
                raise
        return self._info(uri, blob)

    @_wrap_errors()
    def download_file(self, uri: str, local_path: str) -> None:
        os.makedirs(os.path.dirname(local_path) or ".", exist_ok=True)
        tmp = f"{local_path}.part"
        try:
            self._blob(uri).download_to_filename(tmp, checksum="crc32c", timeout=self.timeout, retry=self.retry)
            os.replace(tmp, local_path)
        finally:  # the SDK removes its file on a checksum mismatch only; a dropped connection leaves it
            if os.path.exists(tmp):
                os.unlink(tmp)

    def sync(self, uris: Iterable[str]) -> None:
        """Nothing to do: GCS acknowledges a write only once it is durable."""

    @_wrap_errors()
    def copy(self, src_uri: str, dst_uri: str, *, if_generation_match: int | None = None) -> ObjectInfo:
        """Server-side rewrite: no bytes pass through this process."""
        src = self._blob(src_uri)
        dst = self._blob(dst_uri)
        kwargs = {"if_generation_match": if_generation_match, "timeout": self.timeout}
        retry = self._write_retry(if_generation_match)
        token, _, _ = dst.rewrite(src, retry=retry, **kwargs)
        while token is not None:
            token, _, _ = dst.rewrite(src, token=token, retry=retry, **kwargs)
        return self._info(dst_uri, dst)

    @_wrap_errors()
    def delete(self, uri: str, *, if_generation_match: int | None = None) -> None:
        from google.api_core.exceptions import NotFound

        try:
            self._blob(uri).delete(
                if_generation_match=if_generation_match,
                timeout=self.timeout,
                retry=self._write_retry(if_generation_match),
            )
        except NotFound:
            pass

    def delete_prefix(self, prefix: str) -> int:
        infos = list(self.list(prefix))
        for info in infos:
            self.delete(info.uri, if_generation_match=info.generation)
        return len(infos)
