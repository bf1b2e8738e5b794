"""Offline archives: models from the store as an OCI image layout in a tar, and back.

``save`` writes ``oci-layout``, the blobs and ``index.json`` (each entry naming its full
reference in ``org.opencontainers.image.ref.name``; the models' referrers, such as signatures,
as untagged entries), deterministically (sorted, zero times and
owners), zstd-compressed when the file name ends in ``.zst``; ``skopeo copy oci-archive:FILE``
reads the uncompressed form. ``load`` verifies every blob against the digest it is named by
before it enters the store, and tags last.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import zstandard

from mdl.spec import manifest as manifests
from mdl.spec import mediatypes as mt
from mdl.spec.descriptor import Descriptor
from mdl.spec.digest import Digest
from mdl.spec.errors import InvalidReference, MdlError
from mdl.spec.manifest import Index
from mdl.spec.reference import Reference
from mdl.store import layout
from mdl.store.store import Store

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class ArchiveError(MdlError):
    exit_code = 2


def save(store: Store, refs: Sequence[Reference], path: Path) -> list[Descriptor]:
    """Write the models ``refs`` name to ``path``; returns their index entries."""
    entries = [
        store.resolve(ref).with_annotations({mt.ANNOTATION_REF_NAME: str(ref)}) for ref in refs
    ]
    entries += [
        r for e in list(entries) for r in store.referrers_deep(e.digest) if r not in entries
    ]
    blobs = sorted({digest for entry in entries for digest in store.closure(entry)})
    partial = path.with_name(f".{path.name}.partial")
    with (
        _writer(partial, compress=path.name.endswith(".zst")) as out,
        tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar,
    ):
        _add_bytes(tar, "oci-layout", layout.OCI_LAYOUT)
        for digest in blobs:
            blob_path = store.blob_path(digest)
            info = _info(layout.blob_name(digest), blob_path.stat().st_size)
            with open(blob_path, "rb") as blob:
                tar.addfile(info, blob)
        _add_bytes(tar, "index.json", manifests.encode(Index(tuple(entries))))
    partial.replace(path)
    return entries


def load(store: Store, path: Path) -> list[str]:
    """Read an archive into the store; returns the references it tagged."""
    index: bytes | None = None
    with store.writing(), _reader(path) as source, tarfile.open(fileobj=source, mode="r|") as tar:
        for member in tar:
            name = member.name.removeprefix("./")
            if name == "index.json":
                index = _read_member(tar, member)
            elif name.startswith("blobs/") and member.isfile():
                _load_blob(store, tar, member, name)
        if index is None:
            raise ArchiveError(f"{path}: no index.json: not an OCI image layout archive")
        doc = manifests.parse(index, mt.OCI_INDEX)
        assert isinstance(doc, Index)
        tagged = []
        for entry in doc.manifests:
            ref_name = entry.annotations.get(mt.ANNOTATION_REF_NAME)
            if not store.exists(entry):
                continue
            if not ref_name:
                _attach_referrer(store, entry)
                continue
            try:
                ref = Reference.parse(ref_name)
            except InvalidReference:
                ref = Reference.parse(f"loaded:{ref_name}")  # a bare tag, as other tools write
            store.tag(entry.with_annotations({}), ref)
            tagged.append(str(ref))
    return tagged


def _attach_referrer(store: Store, entry: Descriptor) -> None:
    """An untagged entry whose manifest names a subject (a signature) is kept as its referrer."""
    if entry.media_type not in mt.MANIFEST_TYPES:
        return
    subject = store.read_manifest(entry).subject
    if subject is not None:
        store.attach(entry, subject.digest)


def _load_blob(store: Store, tar: tarfile.TarFile, member: tarfile.TarInfo, name: str) -> None:
    algorithm, _, hex_ = name.removeprefix("blobs/").partition("/")
    try:
        digest = Digest.parse(f"{algorithm}:{hex_}")
    except InvalidReference as exc:
        raise ArchiveError(f"{name}: not a blob path ({exc})") from exc
    expected = Descriptor("application/octet-stream", digest, member.size)
    if store.exists(expected):
        return
    source = tar.extractfile(member)
    assert source is not None
    with store.ingest(expected) as ingest:
        ingest.copy_from(source)
        ingest.commit()


@contextmanager
def _writer(path: Path, *, compress: bool) -> Iterator[BinaryIO]:
    with open(path, "wb") as raw:
        if not compress:
            yield raw
            return
        with zstandard.ZstdCompressor(level=3, threads=-1).stream_writer(raw) as zstd:
            yield zstd


@contextmanager
def _reader(path: Path) -> Iterator[BinaryIO]:
    with open(path, "rb") as raw:
        if raw.read(4) == _ZSTD_MAGIC:
            raw.seek(0)
            with zstandard.ZstdDecompressor().stream_reader(raw) as zstd:
                yield zstd
        else:
            raw.seek(0)
            yield raw


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uid, info.gid = size, 0, 0o444, 0, 0
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_info(name, len(data)), io.BytesIO(data))


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    source = tar.extractfile(member)
    if source is None or member.size > manifests.MAX_MANIFEST_BYTES:
        raise ArchiveError(f"{member.name}: not a readable index")
    return source.read()
