"""The S3 backend: keys as objects in one bucket (under an optional prefix), through boto3.

Any S3-compatible server (tested on Ceph's RADOS Gateway). Credentials come from boto3's
standard chain: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``,
``AWS_PROFILE``, the shared config and credentials files. What differs from the filesystem:

- a write is one PUT, seen whole or not at all; a move is a server-side copy then a delete, so
  for a moment both keys exist (the registry only moves verified bytes to their digest key);
- an appended key is an S3 multipart upload (``s3_append``); its bytes are readable only after
  ``seal`` completes it;
- the modification time is kept in the object's metadata (S3 has no ``touch``), so it has
  sub-second precision;
- locks are objects created with ``If-None-Match: *`` (``s3_lock``).

Names starting with ``.`` (appender state, locks) are never listed, as on the filesystem.
boto3 clients are thread-safe; every call here blocks and is made from worker threads.
"""

from __future__ import annotations

import builtins
import io
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, BinaryIO, cast
from urllib.parse import urlsplit

from mdl.registry.storage.driver import PathNotFound, Stat, check_key
from mdl.registry.storage.s3_append import S3Appender, appending_size, seal
from mdl.registry.storage.s3_client import MTIME, S3Client, mtime_metadata, store_error
from mdl.registry.storage.s3_lock import s3_lock
from mdl.spec.errors import StoreError

COPY_PART = 1024 * 1024 * 1024
"""Objects larger than this are copied part by part (one CopyObject stops at 5 GiB)."""
PRESIGN_SECONDS = 600


def parse_storage(url: str) -> tuple[str, str]:
    """``s3://BUCKET[/PREFIX]`` -> (bucket, prefix without slashes); ValueError otherwise."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"storage must be s3://BUCKET[/PREFIX], not {url!r}")
    prefix = parts.path.strip("/")
    if prefix:
        check_key(prefix)
    return parts.netloc, prefix


class S3Driver:
    """``StorageDriver`` over ``bucket`` (under ``prefix``) of the S3 server ``client`` talks to."""

    def __init__(self, client: S3Client, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""

    def check(self) -> None:
        """Fail now (StoreError) when the bucket cannot be reached with these credentials."""
        try:
            self.client.call("head_bucket", Bucket=self.bucket)
        except PathNotFound:
            raise StoreError(f"S3 bucket {self.bucket!r} does not exist") from None

    def _key(self, key: str) -> str:
        check_key(key)
        return self.prefix + key

    def read(self, key: str) -> bytes:
        body = self.client.call("get_object", Bucket=self.bucket, Key=self._key(key))["Body"]
        with body:
            data: bytes = body.read()
        return data

    def write(self, key: str, data: bytes) -> None:
        self.client.call(
            "put_object",
            Bucket=self.bucket,
            Key=self._key(key),
            Body=data,
            Metadata=mtime_metadata(),
        )

    def stat(self, key: str) -> Stat:
        try:
            head = self.client.call("head_object", Bucket=self.bucket, Key=self._key(key))
        except PathNotFound:
            being_appended = appending_size(self, key)
            if being_appended is None:
                raise
            return being_appended
        return _stat(head)

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except PathNotFound:
            return False
        return True

    def touch(self, key: str) -> None:
        full = self._key(key)
        try:
            self.client.call(
                "copy_object",
                Bucket=self.bucket,
                Key=full,
                CopySource={"Bucket": self.bucket, "Key": full},
                Metadata=mtime_metadata(),
                MetadataDirective="REPLACE",
            )
        except PathNotFound:
            self.write(key, b"")

    def list(self, prefix: str) -> list[str]:
        names = set()
        for page in self._pages(prefix, delimiter="/"):
            for entry in page.get("CommonPrefixes", []):
                names.add(entry["Prefix"].rstrip("/").rsplit("/", 1)[-1])
            for entry in page.get("Contents", []):
                names.add(entry["Key"].rsplit("/", 1)[-1])
        return sorted(name for name in names if name and not name.startswith("."))

    def walk(self, prefix: str) -> Iterator[str]:
        for key in self._keys(prefix):
            if not any(part.startswith(".") for part in key.split("/")):
                yield key

    def delete(self, key: str) -> None:
        self.client.call("delete_object", Bucket=self.bucket, Key=self._key(key))
        batch: list[str] = []
        for child in self._keys(key):
            if child.endswith(".append"):
                S3Appender.discard(self, child)
            batch.append(child)
            if len(batch) == 1000:
                self._delete_many(batch)
                batch = []
        if batch:
            self._delete_many(batch)

    def move(self, source: str, destination: str) -> None:
        src, dst = self._key(source), self._key(destination)
        size = self.stat(source).size
        if size <= COPY_PART:
            self.client.call(
                "copy_object",
                Bucket=self.bucket,
                Key=dst,
                CopySource={"Bucket": self.bucket, "Key": src},
                Metadata=mtime_metadata(),
                MetadataDirective="REPLACE",
            )
        else:
            self._copy_in_parts(src, dst, size)
        self.client.call("delete_object", Bucket=self.bucket, Key=src)

    def appender(self, key: str) -> S3Appender:
        return S3Appender.open(self, key)

    def seal(self, key: str) -> None:
        seal(self, key)

    def open(self, key: str) -> BinaryIO:
        size = self.stat(key).size
        return cast(BinaryIO, _RangedReader(self, self._key(key), size))

    def local_path(self, key: str) -> Path | None:
        return None

    def url(self, key: str) -> str | None:
        params = {"Bucket": self.bucket, "Key": self._key(key)}
        return self.client.presign(params, PRESIGN_SECONDS)

    def lock(self, key: str, *, exclusive: bool, wait: bool = True) -> AbstractContextManager[None]:
        return s3_lock(self, key, exclusive=exclusive, wait=wait)

    # helpers (also used by s3_append and s3_lock)

    def _pages(self, prefix: str, delimiter: str = "") -> Iterator[dict[str, Any]]:
        full = self._key(prefix) + "/" if prefix else self.prefix
        args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": full}
        if delimiter:
            args["Delimiter"] = delimiter
        while True:
            page = self.client.call("list_objects_v2", **args)
            yield page
            if not page.get("IsTruncated"):
                return
            args["ContinuationToken"] = page["NextContinuationToken"]

    def _keys(self, prefix: str) -> Iterator[str]:
        """Every key under ``prefix``, hidden ones included, without the driver's prefix."""
        for page in self._pages(prefix):
            for entry in page.get("Contents", []):
                yield entry["Key"][len(self.prefix) :]

    def _delete_many(self, keys: builtins.list[str]) -> None:
        objects = [{"Key": self.prefix + key} for key in keys]
        self.client.call(
            "delete_objects", Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}
        )

    def _copy_in_parts(self, src: str, dst: str, size: int) -> None:
        upload = self.client.call(
            "create_multipart_upload", Bucket=self.bucket, Key=dst, Metadata=mtime_metadata()
        )["UploadId"]
        try:
            parts = []
            for number, first in enumerate(range(0, size, COPY_PART), start=1):
                last = min(first + COPY_PART, size) - 1
                answer = self.client.call(
                    "upload_part_copy",
                    Bucket=self.bucket,
                    Key=dst,
                    UploadId=upload,
                    PartNumber=number,
                    CopySource={"Bucket": self.bucket, "Key": src},
                    CopySourceRange=f"bytes={first}-{last}",
                )
                parts.append({"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]})
            self.client.call(
                "complete_multipart_upload",
                Bucket=self.bucket,
                Key=dst,
                UploadId=upload,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            self.client.call("abort_multipart_upload", Bucket=self.bucket, Key=dst, UploadId=upload)
            raise


class _RangedReader(io.RawIOBase):
    """An object's bytes from the current offset on, one streamed GET per seek; ``read`` hands
    out the body's own bytes (no buffer in between: the callers read large pieces)."""

    def __init__(self, driver: S3Driver, key: str, size: int) -> None:
        self._driver, self._key, self._size = driver, key, size
        self._offset = 0
        self._body: Any = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._offset

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._offset, io.SEEK_END: self._size}[whence]
        target = max(0, base + offset)
        if target != self._offset:
            self._drop()
            self._offset = target
        return self._offset

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all that is left for -1) straight from the response body."""
        if self._offset >= self._size:
            return b""
        if self._body is None:
            self._body = self._driver.client.call(
                "get_object",
                Bucket=self._driver.bucket,
                Key=self._key,
                Range=f"bytes={self._offset}-",
            )["Body"]
        try:
            data: bytes = self._body.read(None if size < 0 else size)
        except Exception as exc:
            raise store_error("get_object", exc) from exc
        self._offset += len(data)
        return data

    def readall(self) -> bytes:
        return self.read()

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._drop()
        super().close()

    def _drop(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None


def _stat(head: dict[str, Any]) -> Stat:
    stamp = head.get("Metadata", {}).get(MTIME)
    modified = float(stamp) if stamp else head["LastModified"].timestamp()
    return Stat(int(head["ContentLength"]), modified)
