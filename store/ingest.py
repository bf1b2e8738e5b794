"""Writing one blob: into a temporary file, hashed as it streams, verified, fsynced, renamed.

Nothing appears under ``blobs/`` until its digest and size are checked, so a crash at any moment
leaves at most a file under ``ingest/``. A resumable ingest (named after the digest it expects)
keeps its partial file on failure so the next attempt continues from ``offset``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import IO

from mdl.spec.descriptor import Descriptor
from mdl.spec.digest import Digest
from mdl.spec.errors import DigestMismatch, SizeMismatch, StoreError, StoreFull
from mdl.store import layout
from mdl.store.fsio import fsync_dir, write_all, write_error

CHUNK = 4 * 1024 * 1024
STEP = 64 * 1024 * 1024
"""copy_file_range step: one fdatasync and one hash job each."""
HASH_CHUNK = 1024 * 1024
"""Small enough to be hashed from the CPU cache right after it is read."""
_NO_COPY_RANGE = (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL)


class Ingest:
    """A blob being written. Use as a context manager; ``commit`` makes it visible."""

    def __init__(
        self, root: Path, expected: Descriptor | None = None, *, resumable: bool = False
    ) -> None:
        self.root = root
        self.expected = expected
        self.resumable = resumable and expected is not None
        algorithm = expected.digest.algorithm if expected else "sha256"
        self._hasher = hashlib.new(algorithm)
        name = (
            f"{expected.digest.algorithm}-{expected.digest.hex}.partial"
            if self.resumable and expected
            else f"{uuid.uuid4().hex}.tmp"
        )
        self.path = layout.ingest_file(root, name)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if self.resumable else os.O_EXCL)
        self._fd = os.open(self.path, flags, 0o644)
        self.offset = 0
        if self.resumable:
            self._rehash_partial()
        self._sealed: Digest | None = None
        self._done = False

    def _rehash_partial(self) -> None:
        with open(self.path, "rb") as partial:
            while chunk := partial.read(CHUNK):
                self._hasher.update(chunk)
                self.offset += len(chunk)

    def write(self, data: bytes | memoryview) -> None:
        self._hasher.update(data)
        self._write_all(data)

    def _write_all(self, data: bytes | memoryview) -> None:
        self.offset += write_all(self._fd, data, self.path)

    def copy_from(self, source: IO[bytes], progress: Callable[[int], None] | None = None) -> None:
        """Stream ``source`` in: one read per byte, hashing each chunk while the last one writes.

        hashlib and os.write both release the GIL on large buffers, so with two buffers the hash
        of chunk N overlaps the write of chunk N on another core.
        """
        buffers = [bytearray(CHUNK), bytearray(CHUNK)]
        with ThreadPoolExecutor(max_workers=1) as pool:
            turn = 0
            while True:
                buffer = buffers[turn]
                count = source.readinto(buffer)  # type: ignore[attr-defined]
                if not count:
                    break
                chunk = memoryview(buffer)[:count]
                hashing = pool.submit(self._hasher.update, chunk)
                self._write_all(chunk)
                hashing.result()
                if progress:
                    progress(count)
                turn ^= 1

    def copy_file(self, source: IO[bytes], progress: Callable[[int], None] | None = None) -> None:
        """Copy a regular file inside the kernel, hashing the copy as it lands.

        ``os.copy_file_range`` moves each step without passing the bytes through Python (the
        source is read once); a worker hashes the step just written by reading the new file back
        from the page cache while the next step copies, and each step is flushed as soon as it
        is copied, so ``seal``'s fsync finds little left to write. The digest therefore names
        the stored bytes. A file system that refuses ``copy_file_range`` gets ``copy_from``.
        """
        src = source.fileno()
        try:
            count = os.copy_file_range(src, self._fd, STEP)
        except OSError as exc:
            if exc.errno in _NO_COPY_RANGE:
                self.copy_from(source, progress)
                return
            raise write_error(exc, self.path) from exc
        with ThreadPoolExecutor(max_workers=1) as pool, open(self.path, "rb", buffering=0) as back:
            steps = []
            while count:
                steps.append(pool.submit(self._hash_range, back.fileno(), self.offset, count))
                self.offset += count
                if progress:
                    progress(count)
                try:
                    os.fdatasync(self._fd)
                    count = os.copy_file_range(src, self._fd, STEP)
                except OSError as exc:
                    raise write_error(exc, self.path) from exc
            for step in steps:
                step.result()

    def _hash_range(self, fd: int, start: int, count: int) -> None:
        buffer = bytearray(HASH_CHUNK)
        view = memoryview(buffer)
        end = start + count
        while start < end:
            got = os.preadv(fd, [view[: min(HASH_CHUNK, end - start)]], start)
            if not got:
                raise StoreError(f"{self.path}: short read at byte {start}")
            self._hasher.update(view[:got])
            start += got

    def commit(self) -> Digest:
        """Seal and publish: the blob is visible under ``blobs/`` when this returns."""
        digest = self.seal()
        self.publish()
        return digest

    def seal(self) -> Digest:
        """Verify against the expected descriptor and fsync; the file stays under ``ingest/``."""
        digest = Digest(self._hasher.name, self._hasher.hexdigest())
        expected = self.expected
        if expected and self.offset != expected.size:
            self._discard()
            raise SizeMismatch(
                f"{expected.digest}: {expected.media_type}: expected {expected.size} bytes, "
                f"got {self.offset}"
            )
        if expected and digest != expected.digest:
            self._discard()
            raise DigestMismatch(f"{expected.digest}: {expected.media_type}: content is {digest}")
        try:
            os.fsync(self._fd)
        except OSError as exc:
            self._discard()
            raise write_error(exc, self.path) from exc
        os.close(self._fd)
        self._sealed = digest
        return digest

    def publish(self) -> None:
        """Rename a sealed blob into ``blobs/`` (or drop it when that digest is already there)."""
        assert self._sealed is not None, "seal() first"
        publish(self.root, self.path, self._sealed)
        self._done = True

    def abort(self) -> None:
        """Give up: a resumable partial file stays for the next attempt, any other is removed."""
        if self._done:
            return
        if self._sealed is None:
            os.close(self._fd)
        self._done = True
        if not self.resumable or self._sealed is not None:
            self.path.unlink(missing_ok=True)

    def _discard(self) -> None:
        if self._sealed is None:
            os.close(self._fd)
        self._done = True
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> Ingest:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._done:
            return
        if isinstance(exc, StoreFull):
            self._discard()  # a full disk wants its space back, resumable or not
        else:
            self.abort()


def publish(root: Path, path: Path, digest: Digest) -> None:
    """Move a verified, fsynced file into ``blobs/`` read-only; a blob already there wins."""
    final = layout.blob(root, digest)
    if final.exists():
        path.unlink(missing_ok=True)
        return
    final.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o444)
    os.rename(path, final)
    fsync_dir(final.parent)
