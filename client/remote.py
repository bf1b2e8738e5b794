"""One repository of a registry, through the distribution API's endpoints."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from mdl.client.body import MANIFEST_BYTES
from mdl.client.connection import Connection, error_for
from mdl.spec import manifest as manifests
from mdl.spec import mediatypes as mt
from mdl.spec import routes
from mdl.spec.descriptor import Descriptor
from mdl.spec.digest import Digest
from mdl.spec.errors import DigestMismatch, MdlError, NotFound, RemoteError
from mdl.spec.manifest import Index
from mdl.spec.reference import Reference

_KNOWN = mt.MANIFEST_TYPES | mt.INDEX_TYPES
MANIFEST_ACCEPT = ", ".join(
    (mt.OCI_MANIFEST, mt.OCI_INDEX, mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST_LIST)
)


class RemoteRepository:
    def __init__(self, connection: Connection, name: str) -> None:
        self.connection = connection
        self.name = name

    def __str__(self) -> str:
        return f"{self.connection.host}/{self.name}"

    # -- manifests -------------------------------------------------------------------------

    def resolve_reference(self, ref: Reference) -> Descriptor:
        """The root a reference names here: by its digest (checked), else by its tag."""
        if ref.digest:
            root = self.resolve(str(ref.digest))
            if root.digest != ref.digest:
                raise NotFound(f"{ref}: registry answered with {root.digest}")
            return root
        assert ref.tag
        return self.resolve(ref.tag)

    def resolve(self, reference: str) -> Descriptor:
        """The manifest's descriptor, computed from its bytes: a HEAD's Digest and Length
        headers are not trusted, since some registries and proxies get them wrong."""
        data, media_type = self.fetch_manifest(reference)
        return Descriptor(media_type, Digest.of(data), len(data))

    def fetch_manifest(
        self, reference: str, expected: Descriptor | None = None
    ) -> tuple[bytes, str]:
        """The manifest's bytes and media type; checked against ``expected`` (or a digest
        reference) so a registry cannot hand back other content. One over ``MANIFEST_BYTES``
        is refused, and never read whole."""
        if expected and expected.size > MANIFEST_BYTES:
            raise RemoteError(
                f"{self}@{expected.digest}: a manifest of {expected.size} bytes is over "
                f"the limit of {MANIFEST_BYTES}"
            )
        response = self.connection.request(
            "GET",
            routes.MANIFEST.path(name=self.name, reference=reference),
            headers={"Accept": MANIFEST_ACCEPT},
            what=f"{self}:{reference}",
            limit=MANIFEST_BYTES,
        )
        data = response.content
        media_type = _media_type(response.headers.get("Content-Type", ""), data)
        want = expected.digest if expected else None
        if want is None and ":" in reference:  # a digest (a tag has no colon)
            want = Digest.parse(reference)
        if want is not None and Digest.of(data, want.algorithm) != want:
            raise DigestMismatch(f"{self}@{want}: registry sent a manifest with another digest")
        return data, media_type

    def push_manifest(self, reference: str, data: bytes, media_type: str) -> str | None:
        """Put a manifest; the ``OCI-Subject`` the registry answers with (the subject it lists
        the manifest under in its referrers API), if any."""
        response = self.connection.request(
            "PUT",
            routes.MANIFEST.path(name=self.name, reference=reference),
            content=data,
            headers={"Content-Type": media_type},
            ok=(200, 201),
            what=f"push manifest {self}:{reference}",
        )
        digest = Digest.of(data)
        sent = response.headers.get("Docker-Content-Digest")
        if sent and sent != str(digest):
            raise RemoteError(f"{self}:{reference}: registry stored digest {sent}, not {digest}")
        subject: str | None = response.headers.get("OCI-Subject")
        return subject

    def referrers_api(self, subject: Digest, most: int) -> list[Descriptor] | None:
        """What the referrers API lists for ``subject``, page after page (``Link: <…>;
        rel="next"``) until a page lists nothing more or more than ``most`` are listed; None
        when the registry has no such API (it answers 404, as distribution 2.8 does)."""
        what = f"{self} referrers of {subject}"
        url: str | None = routes.REFERRERS.path(name=self.name, digest=str(subject))
        entries: list[Descriptor] = []
        while url is not None and len(entries) <= most:
            try:
                response = self.connection.request(
                    "GET", url, headers={"Accept": mt.OCI_INDEX}, what=what, limit=MANIFEST_BYTES
                )
            except NotFound:
                if entries:
                    raise
                return None
            page = _index_entries(response.content, what)
            entries += page
            following = response.links.get("next", {}).get("url")
            url = str(response.url.join(following)) if page and following else None
        return entries

    # -- blobs -----------------------------------------------------------------------------

    def fetch_blob(self, desc: Descriptor, limit: int) -> bytes:
        """A small blob read into memory, checked against its descriptor; one over ``limit``
        is refused before it is fetched."""
        what = f"{self}@{desc.digest}"
        if desc.size > limit:
            raise RemoteError(f"{what}: a blob of {desc.size} bytes is over the limit of {limit}")
        response = self.connection.request(
            "GET", routes.BLOB.path(name=self.name, digest=str(desc.digest)), what=what, limit=limit
        )
        data = response.content
        if len(data) != desc.size or Digest.of(data, desc.digest.algorithm) != desc.digest:
            raise DigestMismatch(f"{what}: registry sent a blob with another digest")
        return data

    def has_blob(self, desc: Descriptor) -> bool:
        response = self.connection.request(
            "HEAD", self.blob_url(desc), ok=(200, 404), what=f"{self}@{desc.digest}"
        )
        return response.status_code == 200

    def blob_url(self, desc: Descriptor) -> str:
        return self.connection.url(routes.BLOB.path(name=self.name, digest=str(desc.digest)))

    @contextmanager
    def open_range(self, url: str, start: int, end: int) -> Iterator[httpx.Response]:
        """Stream bytes ``start``..``end`` (inclusive) of a blob; redirects are followed, and
        httpx drops the Authorization header when one leaves the registry's host."""
        headers = {"Range": f"bytes={start}-{end}"}
        with self.connection.client.stream("GET", url, headers=headers) as response:
            if response.status_code not in (200, 206):
                raise error_for(response, f"GET {self} blob")
            yield response

    def mount(self, desc: Descriptor, source: str) -> str | None:
        """Ask to mount the blob from repository ``source``: None when mounted (201), else the
        upload location the registry opened instead (202)."""
        response = self.connection.request(
            "POST",
            routes.UPLOADS.path({"mount": str(desc.digest), "from": source}, name=self.name),
            ok=(201, 202),
            what=f"mount {desc.digest} into {self}",
        )
        return None if response.status_code == 201 else _location(response, self)

    def start_upload(self) -> str:
        response = self.connection.request(
            "POST",
            routes.UPLOADS.path(name=self.name),
            ok=(202,),
            what=f"start upload to {self}",
        )
        return _location(response, self)


def _media_type(content_type: str, data: bytes) -> str:
    """The Content-Type when it names a manifest type; else what the document says it is
    (Ollama's registry sends manifests as text/plain)."""
    header = content_type.split(";")[0].strip()
    if header in _KNOWN:
        return header
    try:
        doc = json.loads(data)
    except ValueError:
        return header
    declared = doc.get("mediaType") if isinstance(doc, dict) else None
    if isinstance(declared, str) and declared:
        return declared
    return mt.OCI_INDEX if isinstance(doc, dict) and "manifests" in doc else mt.OCI_MANIFEST


def _index_entries(data: bytes, what: str) -> list[Descriptor]:
    try:
        doc = manifests.parse(data, mt.OCI_INDEX)
    except MdlError as exc:
        raise RemoteError(f"{what}: not an index: {exc}") from None
    assert isinstance(doc, Index)
    return list(doc.manifests)


def _location(response: httpx.Response, repo: RemoteRepository) -> str:
    location = response.headers.get("Location")
    if not location:
        raise RemoteError(f"{repo}: upload answer has no Location header")
    return str(response.url.join(location))
