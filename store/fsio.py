"""Durable file-system steps shared by the store: atomic replace, directory fsync, errno mapping."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

from mdl.spec.errors import StoreError, StoreFull

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def write_error(exc: OSError, path: Path) -> StoreError:
    """Map an OSError from writing ``path``: a full disk gets its own error."""
    if exc.errno in _NO_SPACE:
        return StoreFull(f"no space left on device writing {path}: nothing was stored")
    return StoreError(f"cannot write {path}: {exc.strerror}")


def write_all(fd: int, data: bytes | bytearray | memoryview, path: Path) -> int:
    """Write every byte (os.write may write fewer); returns the count. Errors name ``path``."""
    view = memoryview(data)
    total = len(view)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError as exc:
        raise write_error(exc, path) from exc
    return total


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` so a reader sees the old or the new file, never a mix.

    ``durable=False`` skips the fsyncs: still atomic against a killed process, but a power cut
    may lose the update (fine for hints that are checked again before use).
    """
    temp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}")
    try:
        with open(temp, "wb") as out:
            out.write(data)
            if durable:
                out.flush()
                os.fsync(out.fileno())
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise write_error(exc, path) from exc
    if durable:
        fsync_dir(path.parent)
