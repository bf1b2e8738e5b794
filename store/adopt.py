"""Bring files that already exist on this machine (another tool's blobs) into the store without
copying them where the file system allows: a hard link, verified against the digest expected.

All files of one model are staged under ``ingest/`` first (linked or copied, then hashed), and
published together only when every one verified, so a bad file brings in nothing. A linked blob
is the other tool's file too (one inode): it keeps its mode, since changing it would change the
other tool's file, and both tools only ever replace blobs by rename, never rewrite them.
"""

from __future__ import annotations

import errno
import hashlib
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from mdl.spec.descriptor import Descriptor
from mdl.spec.digest import Digest
from mdl.spec.errors import DigestMismatch, SizeMismatch, StoreError
from mdl.store import layout
from mdl.store.fsio import fsync_dir
from mdl.store.ingest import Ingest

_NO_LINK = (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EOPNOTSUPP, errno.EACCES)


@dataclass
class Adoption:
    """Stage with ``add``, then ``publish``; leaving the context without publishing removes
    everything staged."""

    root: Path
    linked: int = 0
    copied: int = 0
    present: int = 0
    bytes_copied: int = 0
    _links: list[tuple[Path, Digest]] = field(default_factory=list)
    _copies: list[Ingest] = field(default_factory=list)

    def add(self, source: Path, expected: Descriptor) -> None:
        """Stage ``source`` as the blob ``expected`` names; DigestMismatch or SizeMismatch (naming
        ``source``) when its content is not that blob."""
        if layout.blob(self.root, expected.digest).is_file():
            self.present += 1
            return
        temp = layout.ingest_file(self.root, f"{uuid.uuid4().hex}.link")
        try:
            os.link(source, temp)
        except FileNotFoundError:
            raise StoreError(f"{source}: {expected.digest}: blob missing") from None
        except OSError as exc:
            if exc.errno not in _NO_LINK:
                raise StoreError(f"cannot link {source}: {exc.strerror}") from exc
            self._copy(source, expected)
            return
        self._links.append((temp, expected.digest))
        _verify(temp, expected, source)
        self.linked += 1

    def _copy(self, source: Path, expected: Descriptor) -> None:
        ingest = Ingest(self.root, expected)
        self._copies.append(ingest)
        try:
            with open(source, "rb") as file:
                ingest.copy_file(file)
            ingest.seal()
        except (DigestMismatch, SizeMismatch) as exc:
            raise type(exc)(f"{source}: {exc}") from exc
        self.copied += 1
        self.bytes_copied += ingest.offset

    def publish(self) -> None:
        for temp, digest in self._links:
            final = layout.blob(self.root, digest)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.rename(temp, final)
            fsync_dir(final.parent)
        self._links.clear()
        for ingest in self._copies:
            ingest.publish()
        self._copies.clear()

    def __enter__(self) -> Adoption:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for temp, _ in self._links:
            temp.unlink(missing_ok=True)
        for ingest in self._copies:
            ingest.abort()


def _verify(path: Path, expected: Descriptor, source: Path) -> None:
    size = path.stat().st_size
    if size != expected.size:
        raise SizeMismatch(
            f"{source}: {expected.digest}: {expected.media_type}: expected {expected.size} "
            f"bytes, the file has {size}"
        )
    with open(path, "rb") as file:
        got = hashlib.file_digest(file, expected.digest.algorithm).hexdigest()
    if got != expected.digest.hex:
        raise DigestMismatch(
            f"{source}: {expected.digest}: {expected.media_type}: content is "
            f"{expected.digest.algorithm}:{got}"
        )
