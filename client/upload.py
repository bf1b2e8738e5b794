"""Upload one blob to a registry: skip, mount, monolithic or chunked, resumable.

A blob up to ``MONOLITHIC_BYTES`` goes in one PUT. A larger one goes in PATCH chunks, and the
upload's location is kept under ``$MDL_HOME/uploads/`` after every chunk, so a push
that was interrupted asks the registry where the upload stands (GET → ``Range``) and continues;
so does a push after a chunk that failed or was answered busy (409 with ``Retry-After``).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from mdl.client.connection import RETRIES, backoff, error_for, with_retries
from mdl.client.remote import RemoteRepository
from mdl.spec.descriptor import Descriptor
from mdl.spec.errors import RemoteError, TransportError
from mdl.store import layout
from mdl.store.fsio import atomic_write

MONOLITHIC_BYTES = 64 * 1024 * 1024
DEFAULT_BUSY_SECONDS = 60.0
BUSY_POLL = 0.5
"""The least a busy upload is waited on before it is asked again, whatever Retry-After says."""
DEFAULT_CHUNK_BYTES = 128 * 1024 * 1024
READ_BYTES = 1024 * 1024

Progress = Callable[[int], None]


def upload(
    repo: RemoteRepository,
    desc: Descriptor,
    path: Path,
    *,
    mount_from: str | None = None,
    progress: Progress | None = None,
) -> int:
    """Put the blob at ``path`` into ``repo``; returns the bytes sent (0 when mounted)."""
    report = progress or (lambda n: None)
    location = None
    if mount_from and mount_from != repo.name:
        location = repo.mount(desc, mount_from)
        if location is None:
            return 0
    if desc.size <= min(MONOLITHIC_BYTES, chunk_bytes()):
        _put_whole(repo, desc, path, location or repo.start_upload(), report)
        return desc.size
    return _put_chunked(repo, desc, path, location, report)


def chunk_bytes() -> int:
    """``MDL_CHUNK_SIZE`` (bytes): the PATCH size, for registries behind proxies with a body
    limit; also the size above which a blob goes in chunks rather than in one PUT."""
    return int(os.environ.get("MDL_CHUNK_SIZE") or DEFAULT_CHUNK_BYTES)


def _put_whole(
    repo: RemoteRepository, desc: Descriptor, path: Path, location: str, report: Progress
) -> None:
    for attempt in range(RETRIES):
        try:
            response = repo.connection.send(
                "PUT",
                _with_digest(location, desc),
                content=_read(path, 0, desc.size, report),
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(desc.size),
                },
            )
        except httpx.TransportError as exc:
            if attempt == RETRIES - 1:
                raise TransportError(f"upload {desc.digest} to {repo}: {exc}") from exc
            backoff(attempt)
            location = repo.start_upload()
            continue
        if response.status_code in (201, 204):
            response.close()
            return
        error = error_for(response, f"upload {desc.digest} to {repo}")
        # 409 with Retry-After: a balancer re-sent this PUT to another replica while the dead
        # one's lock still holds the session; a fresh session holds no lock.
        busy = isinstance(error, RemoteError) and error.status == 409
        busy = busy and getattr(error, "retry_after", None) is not None
        if (response.status_code < 500 and not busy) or attempt == RETRIES - 1:
            raise error
        backoff(attempt)
        location = repo.start_upload()


def _put_chunked(
    repo: RemoteRepository, desc: Descriptor, path: Path, location: str | None, report: Progress
) -> int:
    """PATCH by PATCH; after a failure the registry is asked where the upload stands and the
    rest goes from there. A failure that follows progress starts a fresh count of retries; a
    409 with ``Retry-After`` (another request holds the upload: on a set of replicas, the
    lock of one that died, until its lease runs out) is waited out, ``busy_timeout()`` in all."""
    saved = _UploadRecord(repo, desc)
    offset = 0
    if location is None:
        location, offset = saved.resume()
    if location is None:
        location = repo.start_upload()
    report(offset)
    sent, chunk = 0, chunk_bytes()
    failures, patience = 0, busy_timeout()
    ask = False
    while True:
        try:
            if ask:
                location, offset = _status(repo, location, desc)
            while offset < desc.size:
                end = min(offset + chunk, desc.size)
                location = _patch(repo, location, path, offset, end, report)
                sent += end - offset
                offset, failures = end, 0
                saved.save(location)
            _finish(repo, desc, location)
            saved.clear()
            return sent
        except (httpx.TransportError, TransportError) as exc:
            failures += 1
            if failures == RETRIES:
                raise TransportError(f"upload {desc.digest} to {repo}: {exc}") from exc
            backoff(failures - 1)
        except RemoteError as exc:
            if exc.status == 409 and exc.retry_after is not None:
                wait = max(exc.retry_after, BUSY_POLL)
                if wait > patience:
                    waited = busy_timeout() - patience
                    note = f"; still busy after {waited:.0f} s of waiting (MDL_BUSY_TIMEOUT)"
                    raise RemoteError(f"{exc}{note}", status=409, code=exc.code) from exc
                patience -= wait
                time.sleep(wait)
            elif exc.status == 416 and failures == 0:
                failures = 1  # the registry has more or less than we thought: ask it where
            elif exc.status == 416 and failures < RETRIES:
                # Refused again where its status said it stands: it cannot tell, start over.
                location, offset, ask = repo.start_upload(), 0, False
                failures += 1
                continue
            elif exc.status < 500 or failures == RETRIES - 1:
                raise
            else:
                failures += 1
                backoff(failures - 1)
        ask = True


def busy_timeout() -> float:
    """``MDL_BUSY_TIMEOUT`` (seconds, default 60): how long one blob's push waits, in all, on
    an upload the registry says is busy (409 with ``Retry-After``) before it gives up."""
    return float(os.environ.get("MDL_BUSY_TIMEOUT") or DEFAULT_BUSY_SECONDS)


def _patch(
    repo: RemoteRepository, location: str, path: Path, start: int, end: int, report: Progress
) -> str:
    response = repo.connection.send(
        "PATCH",
        location,
        content=_read(path, start, end, report),
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{start}-{end - 1}",
            "Content-Length": str(end - start),
        },
    )
    if response.status_code != 202:
        raise error_for(response, f"upload chunk {start}-{end - 1} to {repo}")
    response.close()
    return str(response.url.join(response.headers.get("Location", location)))


def _finish(repo: RemoteRepository, desc: Descriptor, location: str) -> None:
    response = repo.connection.send(
        "PUT", _with_digest(location, desc), headers={"Content-Length": "0"}
    )
    if response.status_code not in (201, 204):
        raise error_for(response, f"finish upload of {desc.digest} to {repo}")
    response.close()


def _status(repo: RemoteRepository, location: str, desc: Descriptor) -> tuple[str, int]:
    """Where an upload stands: (location, next offset); a fresh upload if it is gone."""
    what = f"status of the upload of {desc.digest} to {repo}"
    response = with_retries(lambda: repo.connection.send("GET", location), what, RETRIES)
    response.close()  # the answer is in its status and headers
    if response.status_code != 204:
        return repo.start_upload(), 0
    received = response.headers.get("Range")  # "0-<last byte>", or "0-0" for nothing yet
    last = (received or "").rpartition("-")[2]
    offset = int(last) + 1 if received != "0-0" and last.isdigit() else 0
    return str(response.url.join(response.headers.get("Location", location))), offset


def _with_digest(location: str, desc: Descriptor) -> str:
    return str(httpx.URL(location).copy_merge_params({"digest": str(desc.digest)}))


def _read(path: Path, start: int, end: int, report: Progress) -> Iterator[bytes]:
    with open(path, "rb") as blob:
        blob.seek(start)
        left = end - start
        while left > 0:
            chunk = blob.read(min(READ_BYTES, left))
            if not chunk:
                raise TransportError(f"{path}: shorter than its descriptor")
            left -= len(chunk)
            report(len(chunk))
            yield chunk


class _UploadRecord:
    """The location of an unfinished chunked upload, kept between runs."""

    def __init__(self, repo: RemoteRepository, desc: Descriptor) -> None:
        key = hashlib.sha256(f"{repo}@{desc.digest}".encode()).hexdigest()
        self.path = layout.home() / "uploads" / f"{key}.json"
        self.repo = repo
        self.desc = desc

    def resume(self) -> tuple[str | None, int]:
        try:
            location = json.loads(self.path.read_bytes())["location"]
        except (OSError, ValueError, KeyError):
            return None, 0
        return _status(self.repo, location, self.desc)

    def save(self, location: str) -> None:
        """Only the location: where the upload stands is asked of the registry on resume."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps({"location": location}).encode())

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
