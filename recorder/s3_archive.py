"""Finished recordings copied to an S3-compatible bucket, and read back from it by range.

The files go up as they are at rest: vault streams, encrypted under data keys that only
the master key unwraps, so the bucket never holds plaintext nor a key that opens it.
Objects are ``<prefix>recordings/<id>/<file>``. Each upload is checked against the local
file (size, and the ETag the server answered the upload with); the manifest goes last,
already saying ``archived``, and the local manifest says so only after it is up.

Every call here blocks (the MinIO client is synchronous): callers run it in a thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.error import MinioException
from minio.deleteobjects import DeleteObject

from . import manifest_file
from .errors import ArchiveError
from .recording import Recording

READ_AHEAD = 256 * 1024  # one GET fetches at least this much: a chunk index walks many small records
_TIMEOUT = urllib3.Timeout(connect=5.0, read=30.0)


@dataclass(frozen=True)
class S3Location:
    endpoint: str  # http(s)://host:port
    bucket: str
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    region: str = "us-east-1"
    prefix: str = ""


class S3Archive:
    def __init__(self, location: S3Location) -> None:
        url = urlsplit(location.endpoint)
        if url.scheme not in ("http", "https") or not url.netloc or url.path not in ("", "/"):
            raise ValueError("s3_endpoint must be http(s)://host[:port]")
        self.bucket = location.bucket
        self._prefix = location.prefix
        # Few quick retries here; the archive loop retries for longer (recording_manager.py).
        http = urllib3.PoolManager(timeout=_TIMEOUT, maxsize=8, retries=urllib3.Retry(
            total=2, backoff_factor=0.2, status_forcelist=(500, 502, 503, 504)))
        self._client = Minio(url.netloc, access_key=location.access_key, secret_key=location.secret_key,
                             secure=url.scheme == "https", region=location.region, http_client=http)

    def check(self) -> None:
        """The bucket exists and these keys may see it (raises ArchiveError); changes nothing."""
        try:
            found = self._client.bucket_exists(self.bucket)
        except (MinioException, urllib3.exceptions.HTTPError, ValueError) as exc:
            raise ArchiveError(_reason(exc)) from None
        if not found:
            raise ArchiveError(f"the S3 store has no bucket {self.bucket!r}")

    def key(self, recording_id: str, name: str) -> str:
        return f"{self._prefix}recordings/{recording_id}/{name}"

    def archive(self, recording: Recording) -> dict:
        """Upload a finished recording's files, then its manifest saying so; returns the
        manifest's ``archive`` entry. Raises ArchiveError, leaving the local state as it was."""
        objects = {path.name: self._put(self.key(recording.id, path.name), path) for path in recording.files()}
        archive = {"state": "archived", "bucket": self.bucket, "prefix": self.key(recording.id, ""),
                   "objects": objects}
        def publish(sealed: Path) -> None:
            self._put(self.key(recording.id, manifest_file.NAME), sealed)

        recording.save_archived(archive, publish)
        return archive

    def _put(self, key: str, path: Path) -> dict:
        size = path.stat().st_size
        try:
            sent = self._client.fput_object(self.bucket, key, str(path))
            held = self._client.stat_object(self.bucket, key)
        except (MinioException, urllib3.exceptions.HTTPError, ValueError) as exc:
            raise ArchiveError(_reason(exc)) from None
        if held.size != size or _etag(held.etag) != _etag(sent.etag):
            raise ArchiveError(f"{key}: the bucket holds {held.size} bytes (etag {held.etag}), "
                               f"{size} were sent (etag {sent.etag})")
        return {"size": size, "etag": _etag(sent.etag)}

    def recording_ids(self) -> list[str]:
        """The recordings in the bucket (under this prefix)."""
        top = self.key("", "").removesuffix("/")
        try:
            names = [o.object_name or "" for o in self._client.list_objects(self.bucket, prefix=top)]
        except (MinioException, urllib3.exceptions.HTTPError, ValueError) as exc:
            raise ArchiveError(_reason(exc)) from None
        return [n.removeprefix(top).strip("/") for n in names if n.endswith("/")]

    def open(self, recording_id: str, name: str) -> S3Source:
        return S3Source(self._client, self.bucket, self.key(recording_id, name))

    def remove(self, recording_id: str) -> None:
        """Delete every object of a recording (a no-op when none is there)."""
        prefix = self.key(recording_id, "")
        try:
            names = [o.object_name for o in self._client.list_objects(self.bucket, prefix=prefix, recursive=True)]
            errors = list(self._client.remove_objects(self.bucket, (DeleteObject(n) for n in names if n)))
        except (MinioException, urllib3.exceptions.HTTPError, ValueError) as exc:
            raise ArchiveError(_reason(exc)) from None
        if errors:
            raise ArchiveError(f"{len(errors)} objects under {prefix} were not deleted: {errors[0].message}")


class S3Source:
    """A ranged reader of one object (vault.ByteSource); the last block read is kept."""

    def __init__(self, client: Minio, bucket: str, key: str) -> None:
        self.name = f"s3://{bucket}/{key}"
        self._client, self._bucket, self._key = client, bucket, key
        try:
            self._size = client.stat_object(bucket, key).size or 0
        except MinioException as exc:
            if getattr(exc, "code", "") in ("NoSuchKey", "NoSuchBucket"):
                raise FileNotFoundError(self.name) from None
            raise ArchiveError(_reason(exc)) from None
        except (urllib3.exceptions.HTTPError, ValueError) as exc:
            raise ArchiveError(_reason(exc)) from None
        self._block: tuple[int, bytes] = (0, b"")

    def size(self) -> int:
        return self._size

    def pread(self, length: int, offset: int) -> bytes:
        start, block = self._block
        if not (start <= offset and offset + length <= start + len(block)):
            start, block = offset, self._get(offset, min(max(length, READ_AHEAD), self._size - offset))
            self._block = (start, block)
        return block[offset - start:offset - start + length]

    def _get(self, offset: int, length: int) -> bytes:
        if length <= 0:
            return b""
        try:
            response = self._client.get_object(self._bucket, self._key, offset=offset, length=length)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()
        except (MinioException, urllib3.exceptions.HTTPError, ValueError) as exc:
            raise ArchiveError(_reason(exc)) from None

    def close(self) -> None:
        self._block = (0, b"")


def _etag(etag: str | None) -> str:
    return (etag or "").strip('"')


def _reason(exc: Exception) -> str:
    """What went wrong, without the request's signature or any key."""
    code = getattr(exc, "code", None)
    if code:
        return f"the S3 store refused: {code} ({getattr(exc, 'message', '') or 'no message'})"
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        return f"the S3 store cannot be reached: {type(exc.reason).__name__}"
    return f"the S3 store failed: {type(exc).__name__}: {exc}"[:300]
