"""The filesystem backend: one directory, keys as relative paths, atomic and durable writes.

Small objects are written to a temporary sibling, fsynced and renamed (``store.fsio``); appends
are fsynced on ``close``; a move is a rename followed by an fsync of the directory; locks are
``flock`` on a file, which every process on the machine sees (not across NFS clients). Names
that start with ``.`` are temporary or lock files and never listed.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import BinaryIO

from mdl.registry.storage.driver import LockBusy, PathNotFound, Stat, check_key
from mdl.store.fsio import atomic_write, fsync_dir, write_all


class FileAppender:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.size = self._opened_at = os.fstat(self._fd).st_size

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.size += write_all(self._fd, data, self.path)

    def abort(self) -> None:
        if self._fd >= 0:
            os.ftruncate(self._fd, self._opened_at)
            self.size = self._opened_at
        self.close()

    def close(self) -> None:
        if self._fd < 0:
            return
        try:
            os.fsync(self._fd)
        finally:
            os.close(self._fd)
            self._fd = -1


class FilesystemDriver:
    """``StorageDriver`` over the directory ``root`` (created when missing)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        check_key(key)
        return self.root.joinpath(*key.split("/"))

    def read(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise PathNotFound(key) from None

    def write(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data)

    def stat(self, key: str) -> Stat:
        try:
            result = self._path(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            raise PathNotFound(key) from None
        return Stat(result.st_size, result.st_mtime)

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def touch(self, key: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.utime(path)
        except FileNotFoundError:
            self.write(key, b"")

    def list(self, prefix: str) -> list[str]:
        try:
            names = os.listdir(self._path(prefix))
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(name for name in names if not name.startswith("."))

    def walk(self, prefix: str) -> Iterator[str]:
        base = self._path(prefix)
        for directory, subdirs, files in os.walk(base):
            subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
            relative = Path(directory).relative_to(self.root).as_posix()
            for name in sorted(files):
                if not name.startswith("."):
                    yield f"{relative}/{name}"

    def delete(self, key: str) -> None:
        path = self._path(key)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    def move(self, source: str, destination: str) -> None:
        src, dst = self._path(source), self._path(destination)
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(src, dst)
        except FileNotFoundError:
            if not src.exists():
                raise PathNotFound(source) from None
            raise
        fsync_dir(dst.parent)

    def appender(self, key: str) -> FileAppender:
        return FileAppender(self._path(key))

    def seal(self, key: str) -> None:
        FileAppender(self._path(key)).close()  # creates an empty file when nothing came

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise PathNotFound(key) from None

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def url(self, key: str) -> str | None:
        return None

    def lock(self, key: str, *, exclusive: bool, wait: bool = True) -> AbstractContextManager[None]:
        return _flock(self._path(key), key, exclusive, wait)


@contextmanager
def _flock(path: Path, key: str, exclusive: bool, wait: bool) -> Iterator[None]:
    """flock on ``path`` (created, its directory not): it belongs to this open, so two opens in
    one process exclude each other as two processes do."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except (FileNotFoundError, NotADirectoryError):
        raise PathNotFound(key) from None
    try:
        flags = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        try:
            fcntl.flock(fd, flags if wait else flags | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockBusy(key) from None
        yield
    finally:
        os.close(fd)
