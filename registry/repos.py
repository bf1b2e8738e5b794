"""Repositories over a storage driver: blob links, manifest revisions, tags and referrers.

A blob's bytes live once under ``blobs/``; a repository sees a blob only through its own link
(pushed or mounted there), as in distribution. Manifests are blobs too, linked as revisions that
remember their media type and subject. Everything here is synchronous and small; the endpoint
modules decide what runs in a thread.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from mdl.registry import paths
from mdl.registry.errors import ErrorCode, OCIError
from mdl.registry.storage.driver import PathNotFound, Stat, StorageDriver
from mdl.spec.digest import Digest


@dataclass(frozen=True)
class Revision:
    """A manifest stored in a repository: what its GET answers with, and what refers to it."""

    digest: Digest
    media_type: str
    size: int
    subject: Digest | None = None

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"mediaType": self.media_type, "size": self.size}
        if self.subject:
            obj["subject"] = str(self.subject)
        return obj

    @classmethod
    def from_json(cls, digest: Digest, obj: dict[str, Any]) -> Revision:
        subject = obj.get("subject")
        parsed = Digest.parse(subject) if subject else None
        return cls(digest, obj["mediaType"], obj["size"], parsed)


class Repositories:
    """Every repository of one registry, over one storage driver."""

    def __init__(self, driver: StorageDriver) -> None:
        self.driver = driver

    def gc_lock(self, *, exclusive: bool = False) -> AbstractContextManager[None]:
        """Pushes that link content hold it shared; gc's mark and sweep hold it exclusive."""
        return self.driver.lock(paths.GC_LOCK, exclusive=exclusive)

    # blobs

    def blob_stat(self, name: str, digest: Digest) -> Stat:
        """The blob's size and time, if ``name`` links it; BLOB_UNKNOWN otherwise."""
        if not self.driver.exists(paths.layer_link(name, digest)):
            raise OCIError(ErrorCode.BLOB_UNKNOWN, {"digest": str(digest)})
        try:
            return self.driver.stat(paths.blob(digest))
        except PathNotFound:
            raise OCIError(ErrorCode.BLOB_UNKNOWN, {"digest": str(digest)}) from None

    def blob_size(self, name: str, digest: Digest) -> int | None:
        """The size of a blob ``name`` links; None when it does not."""
        if not self.driver.exists(paths.layer_link(name, digest)):
            return None
        try:
            return self.driver.stat(paths.blob(digest)).size
        except PathNotFound:
            return None

    def has_blob(self, name: str, digest: Digest) -> bool:
        return self.driver.exists(paths.layer_link(name, digest)) and self.driver.exists(
            paths.blob(digest)
        )

    def has_bytes(self, digest: Digest) -> bool:
        """Whether the blob's bytes are stored, for any repository."""
        return self.driver.exists(paths.blob(digest))

    def link_blob(self, name: str, digest: Digest) -> None:
        """Make the blob reachable from ``name`` (and refresh the link's time, for gc)."""
        self.driver.touch(paths.layer_link(name, digest))

    def mount(self, name: str, digest: Digest) -> bool:
        """Link an existing blob into ``name``; False when no repository's bytes are there."""
        with self.gc_lock():
            if not self.driver.exists(paths.blob(digest)):
                return False
            self.link_blob(name, digest)
        return True

    def unlink_blob(self, name: str, digest: Digest) -> None:
        key = paths.layer_link(name, digest)
        if not self.driver.exists(key):
            raise OCIError(ErrorCode.BLOB_UNKNOWN, {"digest": str(digest)})
        self.driver.delete(key)

    # manifests

    def revision(self, name: str, digest: Digest) -> Revision:
        try:
            obj = json.loads(self.driver.read(paths.revision(name, digest)))
        except PathNotFound:
            raise OCIError(ErrorCode.MANIFEST_UNKNOWN, {"digest": str(digest)}) from None
        return Revision.from_json(digest, obj)

    def has_revision(self, name: str, digest: Digest) -> bool:
        return self.driver.exists(paths.revision(name, digest))

    def resolve(self, name: str, reference: str | Digest) -> Revision:
        """The revision a tag or digest names in ``name``; MANIFEST_UNKNOWN otherwise."""
        if isinstance(reference, Digest):
            return self.revision(name, reference)
        try:
            digest = Digest.parse(self.driver.read(paths.tag(name, reference)).decode())
        except PathNotFound:
            raise OCIError(ErrorCode.MANIFEST_UNKNOWN, {"tag": reference}) from None
        return self.revision(name, digest)

    def manifest_bytes(self, revision: Revision) -> bytes:
        try:
            return self.driver.read(paths.blob(revision.digest))
        except PathNotFound:
            raise OCIError(ErrorCode.MANIFEST_UNKNOWN, {"digest": str(revision.digest)}) from None

    def put_manifest(
        self, name: str, revision: Revision, data: bytes, referrer: dict[str, Any] | None
    ) -> None:
        """Store the bytes, link the revision and, for a manifest with a subject, its referrer."""
        self.driver.write(paths.blob(revision.digest), data)  # verified: data hashes to it
        if revision.subject and referrer is not None:
            key = paths.referrer(name, revision.subject, revision.digest)
            self.driver.write(key, json.dumps(referrer).encode())
        link = json.dumps(revision.to_json()).encode()
        self.driver.write(paths.revision(name, revision.digest), link)

    def tag(self, name: str, tag: str, digest: Digest) -> None:
        self.driver.write(paths.tag(name, tag), str(digest).encode())

    def tagged(self, name: str, tag: str) -> tuple[Digest, float] | None:
        """The digest ``tag`` names and when it was written or last ``touch_tag``ged."""
        key = paths.tag(name, tag)
        try:
            return Digest.parse(self.driver.read(key).decode()), self.driver.stat(key).modified
        except PathNotFound:
            return None

    def touch_tag(self, name: str, tag: str) -> None:
        self.driver.touch(paths.tag(name, tag))

    def delete_tag(self, name: str, tag: str) -> None:
        key = paths.tag(name, tag)
        if not self.driver.exists(key):
            raise OCIError(ErrorCode.MANIFEST_UNKNOWN, {"tag": tag})
        self.driver.delete(key)

    def delete_manifest(self, name: str, digest: Digest) -> None:
        """Remove the revision, every tag naming it and its referrer entry."""
        revision = self.revision(name, digest)
        for tag in self.tags(name):
            try:
                if self.driver.read(paths.tag(name, tag)).decode() == str(digest):
                    self.driver.delete(paths.tag(name, tag))
            except PathNotFound:
                continue
        if revision.subject:
            self.driver.delete(paths.referrer(name, revision.subject, digest))
        self.driver.delete(paths.revision(name, digest))

    # discovery

    def tags(self, name: str) -> list[str]:
        return self.driver.list(paths.tags(name))

    def exists(self, name: str) -> bool:
        base = paths.repository(name)
        return any(self.driver.list(f"{base}/{marker}") for marker in paths.REPOSITORY_MARKERS)

    def referrers(self, name: str, subject: Digest) -> list[dict[str, Any]]:
        """Descriptors of the manifests whose subject is ``subject``, in digest order."""
        entries = []
        prefix = paths.referrers(name, subject)
        for entry in self.driver.list(prefix):
            try:
                entries.append(json.loads(self.driver.read(f"{prefix}/{entry}")))
            except PathNotFound:
                continue
        return entries

    def names(self) -> Iterator[str]:
        """Every repository name, in sorted order."""
        yield from self._names(paths.REPOSITORIES, "")

    def _names(self, key: str, name: str) -> Iterator[str]:
        children = self.driver.list(key)
        if name and any(marker in children for marker in paths.REPOSITORY_MARKERS):
            yield name
        for child in children:
            if not child.startswith("_"):
                yield from self._names(f"{key}/{child}", f"{name}/{child}" if name else child)

    def revisions(self, name: str) -> Iterator[Digest]:
        return self._linked(paths.revisions(name))

    def layer_links(self, name: str) -> Iterator[Digest]:
        return self._linked(paths.layers(name))

    def _linked(self, prefix: str) -> Iterator[Digest]:
        """The digests linked under ``prefix``/<algorithm>/<hex>."""
        for algorithm in self.driver.list(prefix):
            for hex_ in self.driver.list(f"{prefix}/{algorithm}"):
                yield Digest(algorithm, hex_)
