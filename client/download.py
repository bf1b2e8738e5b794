"""Download one blob into the store: parallel byte ranges, verified, resumable, never partial.

Bytes land in ``ingest/<alg>-<hex>.partial`` by positional writes, one stream per segment; a
hasher thread follows the contiguous prefix, so the digest is known when the last byte lands.
``<partial>.json`` records each segment's progress: a pull that was killed, cut off or stalled
continues where it stopped. ``<partial>.lock`` makes a second process pulling the same blob wait
for the first and then find the blob in place. Only a verified, fsynced file is published.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

from mdl.client.body import body_pieces
from mdl.client.connection import RETRIES, backoff
from mdl.client.copy import Received
from mdl.client.remote import RemoteRepository
from mdl.spec.descriptor import Descriptor
from mdl.spec.digest import Digest
from mdl.spec.errors import DigestMismatch, RemoteError, TransportError
from mdl.store import layout
from mdl.store.fsio import atomic_write, write_error
from mdl.store.ingest import publish
from mdl.store.lock import file_lock
from mdl.store.store import Store

SEGMENT_BYTES = 32 * 1024 * 1024
"""Blobs smaller than two segments download as one stream."""
CHECKPOINT_BYTES = 16 * 1024 * 1024
DEFAULT_CONNECTIONS = min(4, os.cpu_count() or 1)
"""Parallel ranged streams per large blob (``MDL_PULL_CONNECTIONS``): parsing a stream costs a
core in Python, so more streams than cores only compete (measured on loopback, 2 cores)."""
READ_CHUNK = 1024 * 1024
RELEASE_BYTES = 64 * 1024 * 1024

Progress = Callable[[int], None]


@dataclass
class Segment:
    start: int
    end: int  # exclusive
    written: int = 0

    @property
    def done(self) -> bool:
        return self.start + self.written >= self.end


class _RangesUnsupported(Exception):
    """The server answered a ranged GET with the whole blob."""


def download(
    repo: RemoteRepository,
    desc: Descriptor,
    store: Store,
    *,
    progress: Progress | None = None,
) -> Received:
    partial = layout.ingest_file(store.root, f"{desc.digest.algorithm}-{desc.digest.hex}.partial")
    partial.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(partial.with_name(partial.name + ".lock"), exclusive=True):
        if store.exists(desc):
            return Received(0, 0)
        streams = int(os.environ.get("MDL_PULL_CONNECTIONS") or DEFAULT_CONNECTIONS)
        job = _Job(repo, desc, partial, progress or (lambda n: None), max(1, streams))
        try:
            return job.run(store)
        finally:
            job.close()


class _Job:
    def __init__(
        self,
        repo: RemoteRepository,
        desc: Descriptor,
        partial: Path,
        progress: Progress,
        connections: int,
    ) -> None:
        self.repo, self.desc, self.partial, self.progress = repo, desc, partial, progress
        self.state_path = partial.with_name(partial.name + ".json")
        self.segments = self._load_state() or _plan(desc.size, connections)
        self.fd = os.open(partial, os.O_RDWR | os.O_CREAT, 0o644)
        self.cond = threading.Condition()
        self.failed: BaseException | None = None
        self.url = repo.blob_url(desc)
        self._saved_at = 0

    def close(self) -> None:
        os.close(self.fd)

    def run(self, store: Store) -> Received:
        reused = sum(s.written for s in self.segments)
        hasher = _PrefixHasher(self)
        hashing = threading.Thread(target=hasher.run, daemon=True)
        hashing.start()
        try:
            self._fetch_all()
        except BaseException as exc:
            with self.cond:
                self.failed = exc
                self.cond.notify_all()
            hashing.join()
            self._save_state()
            raise
        hashing.join()
        digest = Digest(self.desc.digest.algorithm, hasher.hexdigest())
        if digest != self.desc.digest:
            self._discard()
            raise DigestMismatch(
                f"{self.repo}@{self.desc.digest}: registry sent content whose digest is {digest}"
            )
        try:
            os.fsync(self.fd)
        except OSError as exc:
            raise write_error(exc, self.partial) from exc
        publish(store.root, self.partial, digest)
        self.state_path.unlink(missing_ok=True)
        return Received(self.desc.size - reused, reused)

    def _fetch_all(self) -> None:
        todo = [s for s in self.segments if not s.done]
        if not todo:
            return
        answered = threading.Event()
        try:
            with ThreadPoolExecutor(max_workers=len(todo)) as pool:
                first = pool.submit(self._fetch_first, todo[0], answered)
                answered.wait()  # the first answer tells where the blob is and if ranges work
                futures = [first]
                if not (first.done() and first.exception()):
                    futures += [pool.submit(self._fetch, s) for s in todo[1:]]
                for future in futures:
                    future.result()
        except _RangesUnsupported:
            self.segments = [Segment(0, self.desc.size)]
            self._fetch(self.segments[0])

    def _fetch_first(self, segment: Segment, answered: threading.Event) -> None:
        try:
            self._fetch(segment, answered)
        finally:
            answered.set()  # also when it failed: the caller then finds out why

    def _fetch(self, segment: Segment, answered: threading.Event | None = None) -> None:
        """Stream one segment, retrying from its last written byte on network trouble. With
        ``answered``, this is the first range: it records where redirects led, checks that the
        server honours ranges, and then sets ``answered``."""
        buffer = memoryview(bytearray(READ_CHUNK))
        for attempt in range(RETRIES):
            if segment.done or self.failed:
                return
            offset = segment.start + segment.written
            try:
                with self.repo.open_range(self.url, offset, segment.end - 1) as response:
                    if answered:
                        self.url = str(response.url)  # later ranges go straight to storage
                    if response.status_code == 200 and (offset > 0 or segment.end < self.desc.size):
                        raise _RangesUnsupported
                    if answered:
                        answered.set()
                    for piece in body_pieces(response, buffer):
                        self._write(segment, piece)
                if segment.done:
                    return
            except (httpx.TransportError, TransportError) as exc:
                if attempt == RETRIES - 1:
                    raise TransportError(f"{self.repo}@{self.desc.digest}: {exc}") from exc
            except RemoteError as exc:
                if exc.status < 500 or attempt == RETRIES - 1:
                    raise
            backoff(attempt)
        raise TransportError(f"{self.repo}@{self.desc.digest}: download did not complete")

    def _write(self, segment: Segment, chunk: memoryview) -> None:
        room = segment.end - (segment.start + segment.written)
        if len(chunk) > room:
            chunk = chunk[:room]  # a server that ignores the range end sends too much
        view, position = chunk, segment.start + segment.written
        try:
            while view:
                count = os.pwrite(self.fd, view, position)
                view, position = view[count:], position + count
        except OSError as exc:
            raise write_error(exc, self.partial) from exc
        with self.cond:
            segment.written += len(chunk)
            self.cond.notify_all()
            checkpoint = sum(s.written for s in self.segments) - self._saved_at >= CHECKPOINT_BYTES
        self.progress(len(chunk))
        if checkpoint:
            self._save_state()

    def _load_state(self) -> list[Segment] | None:
        try:
            doc = json.loads(self.state_path.read_bytes())
            if doc["size"] != self.desc.size:
                return None
            segments = [Segment(*entry) for entry in doc["segments"]]
            on_disk = self.partial.stat().st_size
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if any(s.start + s.written > on_disk for s in segments if s.written):
            return None
        return segments

    def _save_state(self) -> None:
        with self.cond:
            segments = [[s.start, s.end, s.written] for s in self.segments]
            self._saved_at = sum(s.written for s in self.segments)
        doc = {"digest": str(self.desc.digest), "size": self.desc.size, "segments": segments}
        # not durable: after a power cut the final digest check catches any lost bytes
        atomic_write(self.state_path, json.dumps(doc).encode(), durable=False)

    def _discard(self) -> None:
        self.partial.unlink(missing_ok=True)
        self.state_path.unlink(missing_ok=True)


class _PrefixHasher:
    """Hashes the file's contiguous written prefix as it grows, reading it back from the page
    cache, and releases what it has hashed every ``RELEASE_BYTES``."""

    def __init__(self, job: _Job) -> None:
        self.job = job
        self.hasher = hashlib.new(job.desc.digest.algorithm)
        self.offset = 0
        self.released = 0
        self.releasing_from = 0

    def _frontier(self) -> int:
        frontier = 0
        for segment in self.job.segments:
            frontier = segment.start + segment.written
            if not segment.done:
                break
        return frontier

    def run(self) -> None:
        size = self.job.desc.size
        buffer = memoryview(bytearray(READ_CHUNK))
        while self.offset < size:
            with self.job.cond:
                while self._frontier() <= self.offset and not self.job.failed:
                    self.job.cond.wait(timeout=1.0)
                if self.job.failed:
                    return
                frontier = self._frontier()
            while self.offset < frontier:
                wanted = min(READ_CHUNK, frontier - self.offset)
                count = os.preadv(self.job.fd, [buffer[:wanted]], self.offset)
                if not count:
                    break
                self.hasher.update(buffer[:count])
                self.offset += count
                if self.offset - self.released >= RELEASE_BYTES:
                    self._release()

    def _release(self) -> None:
        """Start writing back what is hashed and drop it from the page cache: the bytes are
        not read again, and a multi-GB pull should neither crowd out the cache nor leave GBs
        for the final fsync. Pages still being written are dropped by the next call."""
        start = self.releasing_from
        if hasattr(os, "posix_fadvise"):  # on Linux it also starts the writeback
            os.posix_fadvise(self.job.fd, start, self.offset - start, os.POSIX_FADV_DONTNEED)
        else:
            os.fdatasync(self.job.fd)
        self.releasing_from, self.released = self.released, self.offset

    def hexdigest(self) -> str:
        return self.hasher.hexdigest()


def _plan(size: int, connections: int) -> list[Segment]:
    count = max(1, min(connections, size // SEGMENT_BYTES))
    step = -(-size // count) if size else 0
    return [Segment(i * step, min(size, (i + 1) * step)) for i in range(count)] or [Segment(0, 0)]
