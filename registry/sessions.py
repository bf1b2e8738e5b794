"""Upload sessions: bytes appended in order, hashed as they arrive, verified, then published.

A session is two objects in storage (``_uploads/<uuid>/data`` and ``info``), so it survives a
restart: the offset is the data's size, and a hasher lost with the process is rebuilt by reading
the data once. The hasher kept in memory is trusted only while its offset equals the data size.
Commit runs distribution's steps in order: verify, move into ``blobs/``, link, clean up; a
mismatching upload is discarded and never stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from mdl.registry import paths
from mdl.registry.errors import ErrorCode, OCIError
from mdl.registry.repos import Repositories
from mdl.registry.storage.driver import Appender, PathNotFound
from mdl.spec.digest import HEX_LENGTHS, Digest

READ_CHUNK = 4 * 1024 * 1024
DEFAULT_ALGORITHM = "sha256"


@dataclass
class _Hashing:
    hasher: Any  # hashlib's _Hash (no public type)
    size: int


class Sink:
    """Appends to one session; hashes what it writes. Sync: call it from a worker thread.

    hashlib and the write both release the GIL on large buffers, so each buffer is hashed on
    the sink's own thread while it is being written.
    """

    def __init__(self, appender: Appender, hashing: _Hashing) -> None:
        self.appender = appender
        self.hashing = hashing
        self._hasher_thread = ThreadPoolExecutor(max_workers=1)

    @property
    def size(self) -> int:
        return self.appender.size

    def write(self, data: bytes | bytearray) -> None:
        hashed = self._hasher_thread.submit(self.hashing.hasher.update, data)
        try:
            self.appender.write(data)
        finally:
            hashed.result()
        self.hashing.size += len(data)

    def close(self) -> None:
        self._hasher_thread.shutdown()
        self.appender.close()


class Uploads:
    """The upload sessions of every repository in one storage."""

    def __init__(self, repos: Repositories) -> None:
        self.driver = repos.driver
        self.repos = repos
        self._hashing: dict[tuple[str, str], _Hashing] = {}
        self._locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    def create(self, name: str, algorithm: str | None = None) -> str:
        """A new empty session; ``algorithm`` (sha256 or sha512) picks the running hash."""
        algorithm = algorithm or DEFAULT_ALGORITHM
        if algorithm not in HEX_LENGTHS:
            raise OCIError(ErrorCode.DIGEST_INVALID, {"digest-algorithm": algorithm})
        upload_id = uuid.uuid4().hex
        info = {"startedAt": time.time(), "algorithm": algorithm}
        self.driver.write(paths.upload_info(name, upload_id), json.dumps(info).encode())
        self._hashing[(name, upload_id)] = _Hashing(hashlib.new(algorithm), 0)
        return upload_id

    def lock(self, name: str, upload_id: str) -> asyncio.Lock:
        """One request at a time per session, within this process."""
        key = (name, upload_id)
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    def offset(self, name: str, upload_id: str) -> int:
        """Bytes received so far; BLOB_UPLOAD_UNKNOWN for no such session.

        The data object appears with the first byte; until then the info object alone says
        the session exists.
        """
        try:
            return self.driver.stat(paths.upload_data(name, upload_id)).size
        except PathNotFound:
            if self.driver.exists(paths.upload_info(name, upload_id)):
                return 0
            raise OCIError(ErrorCode.BLOB_UPLOAD_UNKNOWN, {"uuid": upload_id}) from None

    def open(self, name: str, upload_id: str, algorithm: str | None = None) -> Sink:
        """A sink at the session's end (rehashing the data if this process lost its hasher).

        ``algorithm`` switches the running hash of a session that holds no bytes yet.
        """
        self.offset(name, upload_id)
        appender = self.driver.appender(paths.upload_data(name, upload_id))
        hashing = self._hashing_for(name, upload_id, appender.size, algorithm)
        return Sink(appender, hashing)

    def _hashing_for(self, name: str, upload_id: str, size: int, algorithm: str | None) -> _Hashing:
        key = (name, upload_id)
        hashing = self._hashing.get(key)
        wanted = algorithm or (hashing.hasher.name if hashing else self._algorithm(name, upload_id))
        if hashing is None or hashing.size != size or hashing.hasher.name != wanted:
            hashing = self._rehash(name, upload_id, wanted)
            self._hashing[key] = hashing
        return hashing

    def _algorithm(self, name: str, upload_id: str) -> str:
        try:
            info = json.loads(self.driver.read(paths.upload_info(name, upload_id)))
            algorithm = str(info.get("algorithm", DEFAULT_ALGORITHM))
        except (PathNotFound, ValueError):
            return DEFAULT_ALGORITHM
        return algorithm if algorithm in HEX_LENGTHS else DEFAULT_ALGORITHM

    def _rehash(self, name: str, upload_id: str, algorithm: str) -> _Hashing:
        hasher = hashlib.new(algorithm)
        size = 0
        try:
            data = self.driver.open(paths.upload_data(name, upload_id))
        except PathNotFound:
            return _Hashing(hasher, 0)
        with data:
            while chunk := data.read(READ_CHUNK):
                hasher.update(chunk)
                size += len(chunk)
        return _Hashing(hasher, size)

    def truncate(self, name: str, upload_id: str, size: int) -> None:
        """Drop bytes past ``size`` (a chunk that failed half-way); the hasher is rebuilt later."""
        appender = self.driver.appender(paths.upload_data(name, upload_id))
        try:
            appender.truncate(size)
        finally:
            appender.close()
        self._hashing.pop((name, upload_id), None)

    def commit(self, name: str, upload_id: str, digest: Digest) -> None:
        """Verify the session's bytes against ``digest``, publish them and link them to ``name``.

        DIGEST_INVALID (and the session is gone) when the content is not ``digest``.
        """
        size = self.offset(name, upload_id)
        hashing = self._hashing_for(name, upload_id, size, digest.algorithm)
        actual = Digest(digest.algorithm, hashing.hasher.hexdigest())
        if actual != digest:
            self.cancel(name, upload_id)
            raise OCIError(ErrorCode.DIGEST_INVALID, {"digest": str(digest), "actual": str(actual)})
        data = paths.upload_data(name, upload_id)
        if size == 0:
            self.driver.appender(data).close()  # an empty blob has no data object yet
        with self.repos.gc_lock():
            if not self.driver.exists(paths.blob(digest)):
                self.driver.move(data, paths.blob(digest))
            self.repos.link_blob(name, digest)
        self.cancel(name, upload_id)

    def cancel(self, name: str, upload_id: str) -> None:
        """Forget the session and its bytes; idempotent."""
        self._hashing.pop((name, upload_id), None)
        self.driver.delete(paths.upload_dir(name, upload_id))

    def last_active(self, name: str, upload_id: str) -> float:
        """When the session last changed (gc expires sessions by this). A session whose files
        are not there yet (it is being created right now) counts as active now."""
        times = []
        for key in (paths.upload_info(name, upload_id), paths.upload_data(name, upload_id)):
            try:
                times.append(self.driver.stat(key).modified)
            except PathNotFound:
                continue
        return max(times, default=time.time())
