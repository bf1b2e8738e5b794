"""The one copy algorithm behind pull, push and mirror: walk index → manifest → config and
layers, move only what the destination lacks (several blobs at a time), put manifests last;
then each manifest's referrers (signatures, SBOMs) the same way.

A manifest is put only after every blob it references is there, and the root (by its tag) only
after its children, so a tag never names incomplete content. A referrer goes after its subject
(a registry may want the subject first) and is attached to it at the destination; on a pull
that is before the caller tags the root.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from mdl.client.body import MANIFEST_BYTES
from mdl.spec import manifest as manifests
from mdl.spec import mediatypes as mt
from mdl.spec.descriptor import Descriptor
from mdl.spec.digest import Digest
from mdl.spec.errors import MdlError
from mdl.spec.manifest import Index, Manifest
from mdl.spec.variants import Budget, Variant, VariantError, choose, variants_of

BLOB_WORKERS = 3
MAX_DEPTH = 8
"""How deep referrers of referrers are followed (a signature of an SBOM of a model is 2)."""

Progress = Callable[[str, int, int], None]
"""(label, bytes just moved, total bytes of that blob)"""
Pick = Callable[[Index], Sequence[Variant] | None]
"""Which variants of a root index to copy (None: all its manifests)."""


@dataclass(frozen=True)
class Received:
    """What receiving one blob took: bytes moved, and bytes the destination already had."""

    transferred: int
    reused: int


class End(Protocol):
    def has_blob(self, desc: Descriptor) -> bool: ...
    def manifest(self, desc: Descriptor) -> bytes: ...
    def put_manifest(self, desc: Descriptor, data: bytes, reference: str | None) -> None: ...
    def receive(
        self, desc: Descriptor, source: object, progress: Callable[[int], None]
    ) -> Received: ...
    def referrers(self, subject: Digest) -> list[Descriptor]: ...
    def attach(self, referrer: Descriptor, subject: Digest) -> None: ...


@dataclass
class CopyReport:
    digest: str
    bytes_transferred: int = 0
    bytes_skipped: int = 0
    blobs_transferred: int = 0
    blobs_skipped: int = 0
    referrers: int = 0
    variants: list[str] = field(default_factory=list)
    """The quantizations copied, when the root is an index of variants."""


def copy(
    source: End,
    destination: End,
    root: Descriptor,
    reference: str | None,
    progress: Progress | None = None,
    pick: Pick | None = None,
) -> CopyReport:
    """Copy ``root`` and what it reaches; of a root index, only the manifests ``pick`` names."""
    report = CopyReport(str(root.digest))
    walk = _Walk(source, destination, progress, report)
    walk.node(root, source.manifest(root), reference, 0, pick)
    return report


def variant_pick(wanted: str | None, every: bool, budget: Budget | None, what: str) -> Pick:
    """Of an index of variants, the one ``wanted`` or else the best that fits ``budget``, or
    ``every`` one. An index without variant annotations is copied whole."""

    def pick(index: Index) -> Sequence[Variant] | None:
        variants = variants_of(index)
        if not variants and wanted is not None:
            raise VariantError(f"{what}: --variant {wanted}: the index has no variants")
        if not variants or every:
            return variants or None
        return [choose(variants, budget, wanted, what)]

    return pick


@dataclass
class _Walk:
    source: End
    destination: End
    progress: Progress | None
    report: CopyReport
    seen: set[Digest] = field(default_factory=set)

    def node(
        self,
        desc: Descriptor,
        data: bytes,
        reference: str | None,
        depth: int,
        pick: Pick | None = None,
    ) -> None:
        doc = manifests.parse(data, desc.media_type)
        if isinstance(doc, Index):
            picked = pick(doc) if pick else None
            if picked is not None:
                self.report.variants = [v.quantization for v in picked]
            only = {v.descriptor.digest for v in picked} if picked is not None else None
            for child in doc.manifests:
                if only is not None and child.digest not in only:
                    continue
                if child.media_type in mt.MANIFEST_TYPES | mt.INDEX_TYPES:
                    self.node(child, self.source.manifest(child), None, depth)
        else:
            if doc.config.size > MANIFEST_BYTES:  # it is read into memory
                raise MdlError(
                    f"{desc.digest}: a config of {doc.config.size} bytes is over the limit of "
                    f"{MANIFEST_BYTES}"
                )
            config = doc.config.with_annotations({mt.ANNOTATION_FILEPATH: "config"})
            _copy_blobs(
                self.source, self.destination, [config, *doc.layers], self.progress, self.report
            )
        self.destination.put_manifest(desc, data, reference)
        if depth < MAX_DEPTH:
            self.referrers(desc.digest, depth + 1)

    def referrers(self, subject: Digest, depth: int) -> None:
        """Copy and attach what the source lists as referrers of ``subject`` (a registry lists
        a bounded number: ``referrers.Lister``); a listed manifest whose own ``subject`` is
        another one is not a referrer, and is skipped."""
        for listed in self.source.referrers(subject):
            if listed.digest in self.seen or listed.media_type not in _MANIFESTS:
                continue
            self.seen.add(listed.digest)
            data = self.source.manifest(listed)
            doc = manifests.parse(data, listed.media_type)
            if doc.subject is None or doc.subject.digest != subject:
                continue
            self.node(listed, data, None, depth)
            self.destination.attach(referrer_descriptor(listed, data, doc), subject)
            self.report.referrers += 1


_MANIFESTS = mt.MANIFEST_TYPES | mt.INDEX_TYPES


def referrer_descriptor(desc: Descriptor, data: bytes, doc: Manifest | Index) -> Descriptor:
    """How the referrers API lists a manifest: its artifact type (``artifactType``, else the
    config's media type) and its annotations, taken from the manifest itself."""
    artifact = doc.artifact_type
    if artifact is None and isinstance(doc, Manifest):
        artifact = doc.config.media_type
    extra = {"artifactType": artifact} if artifact else {}
    return Descriptor(desc.media_type, desc.digest, len(data), dict(doc.annotations), extra)


def _copy_blobs(
    source: End,
    destination: End,
    blobs: list[Descriptor],
    progress: Progress | None,
    report: CopyReport,
) -> None:
    unique = list({b.digest: b for b in blobs}.values())
    with ThreadPoolExecutor(max_workers=BLOB_WORKERS) as pool:
        present = list(pool.map(destination.has_blob, unique))
        missing = [b for b, here in zip(unique, present, strict=True) if not here]
        for blob, here in zip(unique, present, strict=True):
            if here:
                report.bytes_skipped += blob.size
                report.blobs_skipped += 1

        def move(blob: Descriptor) -> Received:
            label = blob.annotations.get(mt.ANNOTATION_FILEPATH) or blob.digest.short
            tick = (lambda n: progress(label, n, blob.size)) if progress else (lambda n: None)
            return destination.receive(blob, source, tick)

        for received in pool.map(move, missing):
            report.bytes_transferred += received.transferred
            report.bytes_skipped += received.reused
            report.blobs_transferred += 1
