"""Remember the digest of a source file, keyed by what changes when the file does, and the
digest of content derived from a blob (a quantization), keyed by what it was derived with.

A second build of an unchanged multi-GB GGUF then neither reads nor copies it: the stat fields
(size, mtime, ctime, inode, device) must all match, as git's index trusts them. A derived record
is only a hint: the caller checks that the store still holds the blob it names.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
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
    record = {"path": str(source), "fingerprint": _fingerprint(stat), "digest": str(digest)}
    _write(layout.file_cache(mdl_home, source), record)


def _write(entry: Path, record: Mapping[str, object]) -> None:
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(entry, json.dumps(record).encode())
    except (OSError, StoreError):
        pass  # a cache that cannot be written only costs the work again next time


def lookup_derived(mdl_home: Path, key: str) -> Digest | None:
    """The digest remembered for ``key`` (say, ``quantize <source digest> Q4_K_M <quantizer>``)."""
    try:
        record = json.loads(layout.derived_cache(mdl_home, key).read_bytes())
        if record["key"] == key:
            return Digest.parse(record["digest"])
    except (OSError, ValueError, KeyError, TypeError, InvalidReference):
        return None
    return None


def remember_derived(mdl_home: Path, key: str, digest: Digest) -> None:
    """Record that ``key`` produced ``digest``. Its entry shares the source files' directory;
    a key is no file path and its record has no fingerprint, so neither reads as the other."""
    _write(layout.derived_cache(mdl_home, key), {"key": key, "digest": str(digest)})
