"""The one copy algorithm behind pull, push and mirror: walk index → manifest → config and
layers, move only what the destination lacks (several blobs at a time), put manifests last.

A manifest is put only after every blob it references is there, and the root (by its tag) only
after its children, so a tag never names incomplete content.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from mdl.client.body import MANIFEST_BYTES
from mdl.spec import manifest as manifests
from mdl.spec import mediatypes as mt
from mdl.spec.descriptor import Descriptor
from mdl.spec.errors import MdlError
from mdl.spec.manifest import Index

BLOB_WORKERS = 3

Progress = Callable[[str, int, int], None]
"""(label, bytes just moved, total bytes of that blob)"""


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


@dataclass
class CopyReport:
    digest: str
    bytes_transferred: int = 0
    bytes_skipped: int = 0
    blobs_transferred: int = 0
    blobs_skipped: int = 0


def copy(
    source: End,
    destination: End,
    root: Descriptor,
    reference: str | None,
    progress: Progress | None = None,
) -> CopyReport:
    report = CopyReport(str(root.digest))
    _copy_node(source, destination, root, reference, progress, report)
    return report


def _copy_node(
    source: End,
    destination: End,
    desc: Descriptor,
    reference: str | None,
    progress: Progress | None,
    report: CopyReport,
) -> None:
    data = source.manifest(desc)
    doc = manifests.parse(data, desc.media_type)
    if isinstance(doc, Index):
        for child in doc.manifests:
            if child.media_type in mt.MANIFEST_TYPES | mt.INDEX_TYPES:
                _copy_node(source, destination, child, None, progress, report)
    else:
        if doc.config.size > MANIFEST_BYTES:  # it is read into memory
            raise MdlError(
                f"{desc.digest}: a config of {doc.config.size} bytes is over the limit of "
                f"{MANIFEST_BYTES}"
            )
        config = doc.config.with_annotations({mt.ANNOTATION_FILEPATH: "config"})
        _copy_blobs(source, destination, [config, *doc.layers], progress, report)
    destination.put_manifest(desc, data, reference)


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
