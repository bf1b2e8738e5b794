"""The interface every storage backend implements: bytes under ``/``-separated keys.

It is deliberately small (like distribution's ``StorageDriver``) so an object store can implement
it: whole-object reads and writes (each seen whole or not at all) for small documents, an
appendable writer for upload sessions that is sealed into an object before it is read, a move for
publishing a verified upload, listing for discovery and gc, and advisory locks. Keys come only
from ``mdl.registry.paths``. ``tests/registry/test_registry_storage.py`` runs the same suite
against every backend (filesystem, S3); docs/registry.md says what each guarantees.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol


def check_key(key: str) -> None:
    """ValueError for a key that is absolute, empty or climbs out (``..``, ``.``, ``//``)."""
    parts = key.split("/")
    if key.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"invalid storage key {key!r}")


class PathNotFound(Exception):
    """No object under that key."""


class LockBusy(Exception):
    """Another holder has the lock, and the caller asked not to wait."""

    def __init__(self, key: str, retry_after: float = 1.0) -> None:
        super().__init__(key)
        self.retry_after = retry_after
        """Seconds after which the lock is free at the latest (its lease), or a guess."""


@dataclass(frozen=True)
class Stat:
    size: int
    modified: float
    """Seconds since the epoch of the last write or ``touch``."""


class Appender(Protocol):
    """An object being extended: ``size`` is its length so far; ``close`` makes the writes
    durable, ``abort`` drops every write since the appender was opened. Either ends it."""

    size: int

    def write(self, data: bytes | bytearray | memoryview) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...


class StorageDriver(Protocol):
    def read(self, key: str) -> bytes:
        """The whole object; PathNotFound when missing."""
        ...

    def write(self, key: str, data: bytes) -> None:
        """Create or replace atomically: readers see the old or the new bytes, never a mix."""
        ...

    def stat(self, key: str) -> Stat:
        """Size and modification time; PathNotFound when missing."""
        ...

    def exists(self, key: str) -> bool: ...

    def touch(self, key: str) -> None:
        """Set the modification time to now (creating an empty object when missing)."""
        ...

    def list(self, prefix: str) -> list[str]:
        """Sorted names of the direct children of ``prefix``; empty when it does not exist."""
        ...

    def walk(self, prefix: str) -> Iterator[str]:
        """Every object key under ``prefix``, depth first."""
        ...

    def delete(self, key: str) -> None:
        """Remove an object, or a prefix with everything under it; missing is not an error."""
        ...

    def move(self, source: str, destination: str) -> None:
        """Rename atomically, replacing ``destination``; PathNotFound when the source is missing."""
        ...

    def appender(self, key: str) -> Appender:
        """Open ``key`` for appending (created when missing). While it is being appended to,
        ``stat`` and ``exists`` see it; ``read`` and ``open`` only after ``seal``."""
        ...

    def seal(self, key: str) -> None:
        """End appending to ``key``: from now on it is an ordinary object (an empty one when
        nothing was appended), which no appender may extend."""
        ...

    def open(self, key: str) -> BinaryIO:
        """A binary reader positioned at the start; PathNotFound when missing."""
        ...

    def local_path(self, key: str) -> Path | None:
        """A file path serving the object's bytes (for sendfile), or None on remote backends."""
        ...

    def url(self, key: str) -> str | None:
        """A short-lived URL a client may GET the object's bytes from itself (with ``Range``),
        or None when the backend has none."""
        ...

    def lock(self, key: str, *, exclusive: bool, wait: bool = True) -> AbstractContextManager[None]:
        """An advisory lock shared by every process using this storage; with ``wait`` False,
        LockBusy at once when it is held. PathNotFound when ``key``'s parent does not exist."""
        ...
