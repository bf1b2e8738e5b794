"""Remember the digest of a source file, keyed by what changes when the file does.

A second build of an unchanged multi-GB GGUF then neither reads nor copies it: the stat fields
(size, mtime, ctime, inode, device) must all match, as git's index trusts them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from mdl.spec.digest import Digest
from mdl.spec.errors import InvalidReference, StoreError
from mdl.store import layout
from mdl.store.fsio import atomic_write


def _fingerprint(stat: os.stat_result) -> list[int]:
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, stat.st_dev]


def lookup(mdl_home: Path, source: Path, stat: os.stat_result) -> Digest | None:
    """The digest remembered for the file, if it is still as ``stat`` finds it."""
    entry = layout.file_cache(mdl_home, source)
    try:
        record = json.loads(entry.read_bytes())
        if record["fingerprint"] == _fingerprint(stat):
            return Digest.parse(record["digest"])
    except (OSError, ValueError, KeyError, TypeError, InvalidReference):
        return None
    return None


def remember(mdl_home: Path, source: Path, digest: Digest, stat: os.stat_result) -> None:
    """Record ``digest`` for the file as it was when ``stat`` was taken (before reading it)."""
    entry = layout.file_cache(mdl_home, source)
    record = {"path": str(source), "fingerprint": _fingerprint(stat), "digest": str(digest)}
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(entry, json.dumps(record).encode())
    except (OSError, StoreError):
        pass  # a cache that cannot be written only costs a re-hash next time
