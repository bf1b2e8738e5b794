"""The local store: an OCI image layout of content-addressed blobs plus tags in index.json.

Concurrency: every mdl process that adds content holds the store lock shared for the whole
operation (``writing()``); ``remove`` and ``prune`` free blobs only under the exclusive lock, so
they never delete a blob that a running build or pull is about to reference. index.json is
rewritten atomically (temp file, fsync, rename) under its own lock.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from mdl.spec import manifest as manifests
from mdl.spec import mediatypes as mt
from mdl.spec.descriptor import Descriptor
from mdl.spec.digest import Digest
from mdl.spec.errors import MdlError, NotFound, StoreError
from mdl.spec.manifest import Index, Manifest
from mdl.spec.reference import Reference
from mdl.store import layout
from mdl.store.fsio import atomic_write
from mdl.store.ingest import Ingest
from mdl.store.lock import file_lock

_MAX_REFERRERS = 1024
"""A bound on the referrers walked from one subject, against a cycle of hand-made manifests."""


@dataclass(frozen=True)
class Tagged:
    """One index.json entry: a full reference and the manifest or index it names."""

    reference: str
    descriptor: Descriptor


@dataclass(frozen=True)
class PruneReport:
    blobs: tuple[Digest, ...]
    bytes_freed: int
    ingest_files: int


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._initialise()

    @classmethod
    def open(cls, mdl_home: Path | None = None) -> Store:
        return cls(layout.store_root(mdl_home or layout.home()))

    # -- layout ----------------------------------------------------------------------------

    def _initialise(self) -> None:
        try:
            (layout.blobs_dir(self.root) / "sha256").mkdir(parents=True, exist_ok=True)
            layout.ingest_dir(self.root).mkdir(exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the store at {self.root}: {exc.strerror}") from exc
        version_path = layout.version_file(self.root)
        if version_path.exists():
            version = json.loads(version_path.read_bytes()).get("version")
            if not isinstance(version, int) or version > layout.STORE_VERSION:
                raise StoreError(
                    f"{self.root}: store format {version} is newer than this mdl understands "
                    f"({layout.STORE_VERSION}); upgrade mdl"
                )
            return
        with file_lock(layout.index_lock(self.root), exclusive=True):
            if not layout.oci_layout_file(self.root).exists():
                atomic_write(layout.oci_layout_file(self.root), layout.OCI_LAYOUT)
            if not layout.index_file(self.root).exists():
                self._write_index([])
            atomic_write(version_path, json.dumps({"version": layout.STORE_VERSION}).encode())

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold while adding content that a tag will reference; sweeps wait for it."""
        with file_lock(layout.store_lock(self.root), exclusive=False):
            yield

    # -- blobs -----------------------------------------------------------------------------

    def blob_path(self, digest: Digest) -> Path:
        return layout.blob(self.root, digest)

    def modified_at(self, digest: Digest) -> datetime:
        """When the blob was stored: a model's "modified" time is its manifest's."""
        return datetime.fromtimestamp(self.blob_path(digest).stat().st_mtime, UTC)

    def has_blob(self, digest: Digest) -> bool:
        return self.blob_path(digest).is_file()

    def exists(self, desc: Descriptor) -> bool:
        path = self.blob_path(desc.digest)
        try:
            return path.stat().st_size == desc.size
        except FileNotFoundError:
            return False

    def blob_size(self, digest: Digest) -> int:
        """The stored size, or 0 for a blob this store lacks (a partly pulled index)."""
        try:
            return self.blob_path(digest).stat().st_size
        except FileNotFoundError:
            return 0

    def ingest(self, expected: Descriptor | None = None, *, resumable: bool = False) -> Ingest:
        return Ingest(self.root, expected, resumable=resumable)

    def put_bytes(
        self, media_type: str, data: bytes, annotations: dict[str, str] | None = None
    ) -> Descriptor:
        desc = Descriptor.for_bytes(media_type, data, annotations)
        if not self.exists(desc):
            with self.ingest(desc) as ingest:
                ingest.write(data)
                ingest.commit()
        return desc

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        try:
            return open(self.blob_path(desc.digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"{desc.digest}: {desc.media_type}: blob not in the store") from None

    def read_blob(self, desc: Descriptor) -> bytes:
        """Read a small blob whole and check it against its descriptor."""
        with self.open_blob(desc) as blob:
            data = blob.read()
        if len(data) != desc.size or Digest.of(data, desc.digest.algorithm) != desc.digest:
            raise StoreError(f"{desc.digest}: {desc.media_type}: stored blob is corrupt")
        return data

    def read_manifest(self, desc: Descriptor) -> Manifest | Index:
        return manifests.parse(self.read_blob(desc), desc.media_type)

    # -- tags ------------------------------------------------------------------------------

    def tags(self) -> list[Tagged]:
        return [
            Tagged(entry.annotations[mt.ANNOTATION_REF_NAME], entry)
            for entry in self._read_index()
            if mt.ANNOTATION_REF_NAME in entry.annotations
        ]

    # -- referrers -------------------------------------------------------------------------

    def attach(self, referrer: Descriptor, subject: Digest) -> None:
        """Keep ``referrer`` (a manifest whose ``subject`` is ``subject``: a signature, an SBOM)
        as an untagged index.json entry: no model name lists it, and it lives as long as its
        subject does."""
        entry = referrer.with_annotations(
            {**referrer.annotations, mt.ANNOTATION_SUBJECT: str(subject)}
        )
        with file_lock(layout.index_lock(self.root), exclusive=True):
            entries = [e for e in self._read_index() if _ref_name(e) or e.digest != entry.digest]
            entries.append(entry)
            self._write_index(entries)

    def referrers(self, subject: Digest) -> list[Descriptor]:
        """The referrers attached to ``subject``, as the referrers API lists them."""
        return [
            entry.with_annotations(
                {k: v for k, v in entry.annotations.items() if k != mt.ANNOTATION_SUBJECT}
            )
            for entry in self._read_index()
            if entry.annotations.get(mt.ANNOTATION_SUBJECT) == str(subject)
        ]

    def resolve(self, ref: Reference) -> Descriptor:
        """The manifest or index a reference names now; a digest wins over a tag."""
        if ref.digest:
            return self._resolve_digest(ref)
        wanted = str(ref)
        for tagged in self.tags():
            if tagged.reference == wanted:
                return tagged.descriptor.with_annotations({})
        raise NotFound(f"model {wanted} not found")

    def _resolve_digest(self, ref: Reference) -> Descriptor:
        assert ref.digest
        for tagged in self.tags():
            if tagged.descriptor.digest == ref.digest:
                return tagged.descriptor.with_annotations({})
        if not self.has_blob(ref.digest):
            raise NotFound(f"model {ref} not found")
        data = self.blob_path(ref.digest).read_bytes()
        doc = manifests.parse(data)
        return Descriptor(doc.media_type, ref.digest, len(data))

    def tag(self, desc: Descriptor, ref: Reference) -> None:
        """Name ``desc`` by ``ref``'s tag, or by the digest reference itself when it has none
        (a model pulled by digest stays reachable, as docker keeps its repo digests)."""
        name = str(ref) if ref.digest and not ref.tag else str(ref.without_digest())
        entry = desc.with_annotations({mt.ANNOTATION_REF_NAME: name})
        with file_lock(layout.index_lock(self.root), exclusive=True):
            entries = [e for e in self._read_index() if _ref_name(e) != name]
            entries.append(entry)
            self._write_index(entries)

    def untag(self, ref: Reference) -> list[Tagged]:
        """Remove the tag (or, for a digest reference, every tag of that digest)."""
        with file_lock(layout.index_lock(self.root), exclusive=True):
            entries = self._read_index()
            if ref.digest:
                removed = [e for e in entries if e.digest == ref.digest]
            else:
                removed = [e for e in entries if _ref_name(e) == str(ref)]
            if not removed:
                raise NotFound(f"model {ref} not found")
            self._write_index([e for e in entries if e not in removed])
        return [Tagged(_ref_name(e) or str(e.digest), e) for e in removed]

    def referrers_deep(self, subject: Digest) -> list[Descriptor]:
        """The referrers of ``subject`` and of those in turn (a signature of an SBOM)."""
        found: list[Descriptor] = []
        pending = [subject]
        while pending and len(found) < _MAX_REFERRERS:
            for referrer in self.referrers(pending.pop()):
                if referrer not in found:
                    found.append(referrer)
                    pending.append(referrer.digest)
        return found

    # -- checking --------------------------------------------------------------------------

    def verify(self) -> list[str]:
        """Problems found: a blob whose content is not its digest, or a tag whose content is
        incomplete. An empty list means the store holds only complete, verified content."""
        problems = []
        for digest in sorted(self._all_blobs()):
            hasher = hashlib.new(digest.algorithm)
            with open(self.blob_path(digest), "rb") as blob:
                while chunk := blob.read(4 * 1024 * 1024):
                    hasher.update(chunk)
            if hasher.hexdigest() != digest.hex:
                problems.append(f"{digest}: content does not match its digest")
        for tagged in self.tags():
            try:
                missing = [d for d in self.closure(tagged.descriptor) if not self.has_blob(d)]
            except MdlError as exc:
                problems.append(f"{tagged.reference}: {exc}")
                continue
            problems += [f"{tagged.reference}: blob {d} is missing" for d in missing]
        return problems

    # -- freeing ---------------------------------------------------------------------------

    def remove(self, refs: Iterable[Reference]) -> tuple[list[Tagged], PruneReport]:
        """Untag each reference, then free the blobs that no remaining tag reaches."""
        removed = [tagged for ref in refs for tagged in self.untag(ref)]
        with file_lock(layout.store_lock(self.root), exclusive=True):
            candidates: set[Digest] = set()
            for entry in [tagged.descriptor for tagged in removed] + self._drop_orphans():
                candidates |= self.closure(entry)
            freed = candidates - self._reachable()
            return removed, PruneReport(*self._delete_blobs(freed), ingest_files=0)

    def prune(self, *, dry_run: bool = False) -> PruneReport:
        """Free every blob no tag reaches and every leftover temporary file."""
        with file_lock(layout.store_lock(self.root), exclusive=True):
            present = set(self._all_blobs())
            if not dry_run:
                self._drop_orphans()
            garbage = present - self._reachable()
            leftovers = list(layout.ingest_dir(self.root).iterdir())
            if dry_run:
                size = sum(self.blob_path(d).stat().st_size for d in garbage)
                return PruneReport(tuple(sorted(garbage)), size, len(leftovers))
            for path in leftovers:
                path.unlink(missing_ok=True)
            report = PruneReport(*self._delete_blobs(garbage), ingest_files=len(leftovers))
            self._drop_stale_shard_links()
            return report

    def closure(self, desc: Descriptor) -> set[Digest]:
        """Every blob a manifest or index reaches, itself included; missing children are skipped.

        An index's manifests that are not here (variants a pull left out) are not reached at
        all: an index is whole with any subset of its variants."""
        reached = {desc.digest}
        if desc.media_type not in mt.MANIFEST_TYPES | mt.INDEX_TYPES or not self.has_blob(
            desc.digest
        ):
            return reached
        doc = self.read_manifest(desc)
        if isinstance(doc, Manifest):
            children = doc.blobs
        else:
            children = tuple(child for child in doc.manifests if self.has_blob(child.digest))
        for child in children:
            reached |= self.closure(child)
        return reached

    def _reachable(self) -> set[Digest]:
        """What tags reach, plus the referrers of anything reached (signatures of signatures)."""
        entries = self._read_index()
        reached: set[Digest] = set()
        for entry in entries:
            if _subject(entry) is None:
                reached |= self.closure(entry)
        pending = [e for e in entries if _subject(e) is not None]
        while attached := [e for e in pending if _subject(e) in reached]:
            for entry in attached:
                reached |= self.closure(entry)
            pending = [e for e in pending if e not in attached]
        return reached

    def _drop_orphans(self) -> list[Descriptor]:
        """Forget the referrers whose subject no tag reaches any more; returns them."""
        reached = self._reachable()
        with file_lock(layout.index_lock(self.root), exclusive=True):
            entries = self._read_index()
            orphans = [e for e in entries if _subject(e) is not None and e.digest not in reached]
            if orphans:
                self._write_index([e for e in entries if e not in orphans])
        return orphans

    def _drop_stale_shard_links(self) -> None:
        """Remove the shard-name links of split models whose manifest is gone."""
        links = layout.shard_links_root(self.root.parent)
        if not links.is_dir():
            return
        for directory in links.iterdir():
            if directory.name.startswith("."):  # being made by a server right now
                continue
            if not self.has_blob(Digest("sha256", directory.name)):
                shutil.rmtree(directory, ignore_errors=True)

    def _all_blobs(self) -> Iterator[Digest]:
        for algorithm_dir in layout.blobs_dir(self.root).iterdir():
            for blob in algorithm_dir.iterdir():
                yield Digest(algorithm_dir.name, blob.name)

    def _delete_blobs(self, digests: Iterable[Digest]) -> tuple[tuple[Digest, ...], int]:
        deleted, size = [], 0
        for digest in sorted(digests):
            path = self.blob_path(digest)
            try:
                size += path.stat().st_size
                path.unlink()
            except FileNotFoundError:
                continue
            deleted.append(digest)
        return tuple(deleted), size

    # -- index.json ------------------------------------------------------------------------

    def _read_index(self) -> list[Descriptor]:
        try:
            data = layout.index_file(self.root).read_bytes()
            doc = manifests.parse(data, mt.OCI_INDEX)
        except FileNotFoundError:
            return []
        assert isinstance(doc, Index)
        return list(doc.manifests)

    def _write_index(self, entries: list[Descriptor]) -> None:
        entries.sort(key=lambda e: (_ref_name(e) or "", str(e.digest)))
        atomic_write(layout.index_file(self.root), manifests.encode(Index(tuple(entries))))


def _ref_name(entry: Descriptor) -> str | None:
    return entry.annotations.get(mt.ANNOTATION_REF_NAME)


def _subject(entry: Descriptor) -> Digest | None:
    subject = entry.annotations.get(mt.ANNOTATION_SUBJECT)
    return Digest.parse(subject) if subject else None
