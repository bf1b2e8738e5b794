"""The two ends a copy moves content between: the local store and a registry repository.

Each end answers what it holds, hands out verified manifests, and receives a blob from the
other end in the way that suits the pair: a ranged download into the store, an upload (or a
cross-repository mount) into a registry. Each lists and attaches referrers: the store in its
index.json, a registry through its referrers API or, when it has none, the tag schema.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mdl.client import referrers
from mdl.client.copy import Received
from mdl.client.download import download
from mdl.client.remote import RemoteRepository
from mdl.client.upload import upload
from mdl.spec.descriptor import Descriptor
from mdl.spec.digest import Digest
from mdl.spec.errors import DigestMismatch, MdlError
from mdl.store import layout
from mdl.store.fsio import atomic_write
from mdl.store.store import Store

Progress = Callable[[int], None]


class LocalEnd:
    def __init__(self, store: Store) -> None:
        self.store = store

    def has_blob(self, desc: Descriptor) -> bool:
        return self.store.exists(desc)

    def manifest(self, desc: Descriptor) -> bytes:
        return self.store.read_blob(desc)

    def put_manifest(self, desc: Descriptor, data: bytes, reference: str | None) -> None:
        if Digest.of(data, desc.digest.algorithm) != desc.digest:
            raise DigestMismatch(f"{desc.digest}: manifest bytes do not match")
        self.store.put_bytes(desc.media_type, data)

    def receive(self, desc: Descriptor, source: object, progress: Progress) -> Received:
        if not isinstance(source, RemoteEnd):
            raise MdlError(f"cannot copy {desc.digest} into the store from {source!r}")
        received = download(source.repo, desc, self.store, progress=progress)
        remember_source(source.repo, desc.digest)
        return received

    def referrers(self, subject: Digest) -> list[Descriptor]:
        return self.store.referrers(subject)

    def attach(self, referrer: Descriptor, subject: Digest) -> None:
        self.store.attach(referrer, subject)


class RemoteEnd:
    def __init__(self, repo: RemoteRepository) -> None:
        self.repo = repo
        self._list = referrers.Lister(repo)
        self._indexed: dict[Digest, str | None] = {}
        """Manifest -> the subject the registry said (OCI-Subject) it lists it under."""

    def has_blob(self, desc: Descriptor) -> bool:
        return self.repo.has_blob(desc)

    def manifest(self, desc: Descriptor) -> bytes:
        return self.repo.fetch_manifest(str(desc.digest), desc)[0]

    def put_manifest(self, desc: Descriptor, data: bytes, reference: str | None) -> None:
        indexed = self.repo.push_manifest(reference or str(desc.digest), data, desc.media_type)
        self._indexed[desc.digest] = indexed

    def referrers(self, subject: Digest) -> list[Descriptor]:
        return self._list(subject)

    def attach(self, referrer: Descriptor, subject: Digest) -> None:
        """A registry that answered the referrer's put with its subject lists it already;
        for any other, mdl keeps the subject's tag index."""
        if self._indexed.get(referrer.digest) != str(subject):
            referrers.record(self.repo, referrer, subject)

    def receive(self, desc: Descriptor, source: object, progress: Progress) -> Received:
        if not isinstance(source, LocalEnd):
            raise MdlError(f"cannot copy {desc.digest} into {self.repo} from {source!r}")
        path = source.store.blob_path(desc.digest)
        sent = upload(
            self.repo,
            desc,
            path,
            mount_from=known_source(self.repo, desc.digest),
            progress=progress,
        )
        remember_source(self.repo, desc.digest)
        return Received(sent, desc.size - sent)


def _source_file(repo: RemoteRepository, digest: Digest) -> Path:
    host = repo.connection.host.replace(":", "_").replace("/", "_")
    return layout.home() / "cache" / "blob-sources" / host / digest.hex


def remember_source(repo: RemoteRepository, digest: Digest) -> None:
    """Note that ``repo`` holds the blob, so a later push to a sibling repository can mount it."""
    path = _source_file(repo, digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, repo.name.encode(), durable=False)


def known_source(repo: RemoteRepository, digest: Digest) -> str | None:
    try:
        return _source_file(repo, digest).read_text() or None
    except OSError:
        return None
