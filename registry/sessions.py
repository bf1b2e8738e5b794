"""Upload sessions: bytes appended in order, hashed as they arrive, verified, then published.

A session is objects in storage (``_uploads/<uuid>/data``, ``info``, ``state``), so it survives
a restart and is shared by every process serving the same root. A request that changes a
session holds its lock (``.lock``, across processes) from its first look at the session to its
last write; a second request meanwhile gets UPLOAD_BUSY (409) at once rather than waiting. Every
change ends by writing ``state``: the data's size and a fresh random stamp. A running hash kept
in memory is trusted only by the process that wrote the current stamp, at the size it wrote.
With a secret (``--secret-file``), ``state`` also carries the hash's own state (``hashstate``)
signed with it, bound to the upload, its size and its stamp: any process holding the same
secret carries the hash on from there, so an upload whose chunks reach a different replica
each is still hashed once, as it arrives. In any other case (no secret or another one, a chunk
failed half-way, no resumable hash in this OpenSSL) the hash is not carried on, and the commit
hashes the data from storage instead.

Commit runs distribution's steps in order, under the session's lock: seal, verify, move into
``blobs/`` (replacing any blob of that digest: only verified bytes are ever put there), link,
clean up; a mismatching upload is discarded and never stored. Sessions are bounded per
repository; a full repository first drops its sessions idle longer than the expiry.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from mdl.registry import hashstate, paths, secret
from mdl.registry.errors import ErrorCode, OCIError
from mdl.registry.repos import Repositories
from mdl.registry.storage.driver import Appender, LockBusy, PathNotFound
from mdl.spec.digest import HEX_LENGTHS, Digest

READ_CHUNK = 4 * 1024 * 1024
DEFAULT_ALGORITHM = "sha256"
DEFAULT_MAX_UPLOADS = 100
DEFAULT_UPLOAD_EXPIRY = 86400


@dataclass(frozen=True)
class UploadLimits:
    per_repository: int = DEFAULT_MAX_UPLOADS
    """Open sessions one repository may have (TOO_MANY_UPLOADS, 429, beyond)."""
    expiry: float = DEFAULT_UPLOAD_EXPIRY
    """Seconds idle after which a session may be dropped to make room, and its running hash
    forgotten (``gc`` has its own expiry for the storage)."""
    cached_hashes: int = 1024
    """Running hashes kept in memory at most; one forgotten costs a re-read at its commit."""


@dataclass
class _Hashing:
    hasher: Any  # hashlib's _Hash (no public type)
    size: int
    stamp: str
    used: float


class Sink:
    """Appends to one session; hashes what it writes when the session's hash is trusted.
    Sync: call it from a worker thread.

    hashlib and the write both release the GIL on large buffers, so each buffer is hashed on
    the sink's own thread while it is being written.
    """

    def __init__(self, appender: Appender, hasher: Any | None) -> None:
        self.appender = appender
        self.hasher = hasher
        self._hasher_thread = ThreadPoolExecutor(max_workers=1) if hasher is not None else None

    @property
    def size(self) -> int:
        return self.appender.size

    def write(self, data: bytes | bytearray) -> None:
        if self._hasher_thread is None or self.hasher is None:
            self.appender.write(data)
            return
        hashed = self._hasher_thread.submit(self.hasher.update, data)
        try:
            self.appender.write(data)
        finally:
            hashed.result()

    def close(self, *, keep: bool = True) -> None:
        """End the append: keep what was written, or drop all of it."""
        if self._hasher_thread is not None:
            self._hasher_thread.shutdown()
        if keep:
            self.appender.close()
        else:
            self.appender.abort()


class Session:
    """One upload, held by one request: its lock across processes is taken until ``release``.

    Sync (storage I/O and hashing): call every method from a worker thread.
    """

    def __init__(
        self,
        uploads: Uploads,
        name: str,
        upload_id: str,
        held: AbstractContextManager[None],
        hashing: _Hashing | None,
        size: int,
    ) -> None:
        self.uploads = uploads
        self.name = name
        self.upload_id = upload_id
        self._held: AbstractContextManager[None] | None = held
        self._hashing = hashing
        self.size = size

    def sink(self, algorithm: str | None = None) -> Sink:
        """A sink at the session's end. ``algorithm`` switches the hash of an empty session."""
        wanted = algorithm or self._algorithm()
        if self.size == 0 and (self._hashing is None or self._hashing.hasher.name != wanted):
            self._hashing = _Hashing(hashstate.new(wanted), 0, "", time.monotonic())
        hasher = self._hashing.hasher if self._hashing is not None else None
        appender = self.uploads.driver.appender(paths.upload_data(self.name, self.upload_id))
        return Sink(appender, hasher)

    def appended(self, sink: Sink, *, ok: bool, undo: bool = False) -> None:
        """Close ``sink`` and record the change. A failed append is dropped whole when ``undo``
        (else what arrived is kept) and leaves the hash untrusted."""
        try:
            sink.close(keep=ok or not undo)
        finally:
            if not ok:
                self._hashing = None
            self.size = self.uploads.offset(self.name, self.upload_id)
            self._stamp()

    def commit(self, digest: Digest) -> None:
        """Verify the session's bytes against ``digest``, publish them and link them to the
        repository. DIGEST_INVALID (and the session is gone) when the content is not ``digest``.
        """
        driver = self.uploads.driver
        data = paths.upload_data(self.name, self.upload_id)
        driver.seal(data)
        actual = self._digest(digest.algorithm)
        if actual != digest:
            self.cancel()
            raise OCIError(ErrorCode.DIGEST_INVALID, {"digest": str(digest), "actual": str(actual)})
        with self.uploads.repos.gc_lock():
            driver.move(data, paths.blob(digest))
            self.uploads.repos.link_blob(self.name, digest)
        self.cancel()

    def cancel(self) -> None:
        """Forget the session and its bytes; idempotent."""
        self.uploads.forget(self.name, self.upload_id)
        self.uploads.driver.delete(paths.upload_dir(self.name, self.upload_id))

    def release(self) -> None:
        """Let the next request have the session; idempotent."""
        held, self._held = self._held, None
        if held is not None:
            held.__exit__(None, None, None)

    def _digest(self, algorithm: str) -> Digest:
        hashing = self._hashing
        if hashing is None or hashing.hasher.name != algorithm or hashing.size != self.size:
            return self._rehash(algorithm)
        return Digest(algorithm, hashing.hasher.hexdigest())

    def _rehash(self, algorithm: str) -> Digest:
        self.uploads.rehashed += 1
        hasher = hashlib.new(algorithm)
        try:
            data = self.uploads.driver.open(paths.upload_data(self.name, self.upload_id))
        except PathNotFound:
            return Digest(algorithm, hasher.hexdigest())
        with data:
            while chunk := data.read(READ_CHUNK):
                hasher.update(chunk)
        return Digest(algorithm, hasher.hexdigest())

    def _stamp(self) -> None:
        stamp = secrets.token_hex(16)
        state: dict[str, object] = {"size": self.size, "stamp": stamp}
        key = self.uploads.secret
        if self._hashing is not None and key is not None and hasattr(self._hashing.hasher, "state"):
            algorithm = str(self._hashing.hasher.name)
            saved = base64.b64encode(self._hashing.hasher.state()).decode()
            fields = (self.name, self.upload_id, str(self.size), stamp, algorithm, saved)
            state["hash"] = {
                "algorithm": algorithm,
                "state": saved,
                "mac": secret.sign(key, *fields),
            }
        self.uploads.driver.write(
            paths.upload_state(self.name, self.upload_id), json.dumps(state).encode()
        )
        if self._hashing is not None:
            self._hashing.size, self._hashing.stamp = self.size, stamp
            self.uploads.remember(self.name, self.upload_id, self._hashing)
        else:
            self.uploads.forget(self.name, self.upload_id)

    def _algorithm(self) -> str:
        if self._hashing is not None:
            return str(self._hashing.hasher.name)
        return self.uploads.algorithm(self.name, self.upload_id)


class Uploads:
    """The upload sessions of every repository in one storage."""

    def __init__(
        self,
        repos: Repositories,
        limits: UploadLimits | None = None,
        secret: bytes | None = None,
    ) -> None:
        self.driver = repos.driver
        self.repos = repos
        self.limits = limits or UploadLimits()
        self.secret = secret
        """Signs the hash state saved with each session; None: nothing is saved."""
        self.rehashed = 0
        """Commits that had to read their data back to hash it (no hash carried on)."""
        self._hashing: OrderedDict[tuple[str, str], _Hashing] = OrderedDict()
        self._cache_mutex = threading.Lock()  # sessions are handled on several threads

    def create(self, name: str, algorithm: str | None = None) -> str:
        """A new empty session; ``algorithm`` (sha256 or sha512) picks the running hash.
        TOO_MANY_UPLOADS when the repository has as many open as the limit allows."""
        algorithm = algorithm or DEFAULT_ALGORITHM
        if algorithm not in HEX_LENGTHS:
            raise OCIError(ErrorCode.DIGEST_INVALID, {"digest-algorithm": algorithm})
        self._make_room(name)
        upload_id = uuid.uuid4().hex
        info = {"startedAt": time.time(), "algorithm": algorithm}
        self.driver.write(paths.upload_info(name, upload_id), json.dumps(info).encode())
        return upload_id

    def hold(self, name: str, upload_id: str) -> Session:
        """The session, locked for this request: BLOB_UPLOAD_UNKNOWN for no such session,
        UPLOAD_BUSY while another request (in any process) holds it."""
        try:
            held = self.driver.lock(paths.upload_lock(name, upload_id), exclusive=True, wait=False)
            held.__enter__()
        except PathNotFound:
            raise OCIError(ErrorCode.BLOB_UPLOAD_UNKNOWN, {"uuid": upload_id}) from None
        except LockBusy as busy:
            retry = {"Retry-After": str(max(1, math.ceil(busy.retry_after)))}
            raise OCIError(ErrorCode.UPLOAD_BUSY, {"uuid": upload_id}, retry) from None
        try:
            size = self.offset(name, upload_id)
            hashing = self._trusted(name, upload_id, size)
            return Session(self, name, upload_id, held, hashing, size)
        except OCIError:
            # Cancelled or committed while we opened its lock: drop the lock file we made.
            self.driver.delete(paths.upload_dir(name, upload_id))
            held.__exit__(None, None, None)
            raise
        except BaseException:
            held.__exit__(None, None, None)
            raise

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

    def algorithm(self, name: str, upload_id: str) -> str:
        try:
            info = json.loads(self.driver.read(paths.upload_info(name, upload_id)))
            algorithm = str(info.get("algorithm", DEFAULT_ALGORITHM))
        except (PathNotFound, ValueError, AttributeError):
            return DEFAULT_ALGORITHM
        return algorithm if algorithm in HEX_LENGTHS else DEFAULT_ALGORITHM

    def expire(self, name: str, upload_id: str, max_idle: float) -> bool:
        """Drop the session if it has been idle longer than ``max_idle`` seconds and no request
        holds it; whether it was dropped."""
        if time.time() - self.last_active(name, upload_id) <= max_idle:
            return False
        try:
            session = self.hold(name, upload_id)
        except OCIError:
            return False
        try:
            session.cancel()
        finally:
            session.release()
        return True

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

    def remember(self, name: str, upload_id: str, hashing: _Hashing) -> None:
        key = (name, upload_id)
        hashing.used = time.monotonic()
        oldest = hashing.used - self.limits.expiry
        with self._cache_mutex:
            self._hashing[key] = hashing
            self._hashing.move_to_end(key)
            while self._hashing and (
                len(self._hashing) > self.limits.cached_hashes
                or next(iter(self._hashing.values())).used < oldest
            ):
                self._hashing.popitem(last=False)

    def forget(self, name: str, upload_id: str) -> None:
        with self._cache_mutex:
            self._hashing.pop((name, upload_id), None)

    def cached(self) -> int:
        """Running hashes held in memory now (bounded by ``limits.cached_hashes``)."""
        return len(self._hashing)

    def _trusted(self, name: str, upload_id: str, size: int) -> _Hashing | None:
        """This process's running hash if it wrote the session's current state, else the one
        saved in that state under this secret; None when neither holds."""
        with self._cache_mutex:
            hashing = self._hashing.get((name, upload_id))
        if hashing is None and self.secret is None:
            return None
        try:
            state = json.loads(self.driver.read(paths.upload_state(name, upload_id)))
        except PathNotFound:
            state = {"size": 0, "stamp": ""}  # a new session: nobody wrote to it yet
        except ValueError:
            state = None
        if not isinstance(state, dict) or state.get("size") != size:
            self.forget(name, upload_id)
            return None
        if hashing is not None:
            if state.get("stamp") == hashing.stamp and hashing.size == size:
                return hashing
            self.forget(name, upload_id)
        return self._saved(name, upload_id, size, state)

    def _saved(
        self, name: str, upload_id: str, size: int, state: dict[str, Any]
    ) -> _Hashing | None:
        """The hash saved in ``state``, if its signature holds for this upload at ``size``."""
        saved, stamp = state.get("hash"), state.get("stamp")
        if self.secret is None or not isinstance(saved, dict) or not isinstance(stamp, str):
            return None
        algorithm, encoded = saved.get("algorithm"), saved.get("state")
        if not isinstance(algorithm, str) or not isinstance(encoded, str):
            return None
        fields = (name, upload_id, str(size), stamp, algorithm, encoded)
        if not secret.verify(self.secret, saved.get("mac"), *fields):
            return None
        try:
            hasher = hashstate.restore(algorithm, base64.b64decode(encoded, validate=True))
        except ValueError:
            return None
        return None if hasher is None else _Hashing(hasher, size, stamp, time.monotonic())

    def _make_room(self, name: str) -> None:
        open_ids = self.driver.list(paths.uploads(name))
        if len(open_ids) < self.limits.per_repository:
            return
        dropped = sum(self.expire(name, i, self.limits.expiry) for i in open_ids)
        if len(open_ids) - dropped >= self.limits.per_repository:
            raise OCIError(
                ErrorCode.TOO_MANY_UPLOADS, {"limit": self.limits.per_repository, "name": name}
            )
