"""A manifest's referrers on a registry: through the OCI 1.1 referrers API where the registry
has one, else through the distribution spec's referrers tag schema (a ``<alg>-<hex>`` tag
holding an index of the subject's referrers), which mdl reads and writes for registries such as
distribution 2.8."""

from __future__ import annotations

from mdl.client.remote import RemoteRepository
from mdl.spec import manifest as manifests
from mdl.spec import mediatypes as mt
from mdl.spec.descriptor import Descriptor
from mdl.spec.digest import Digest
from mdl.spec.errors import NotFound, RemoteError
from mdl.spec.manifest import Index

MAX_REFERRERS = 1024
"""The most referrers one walk (a copy, a discover, a verify) takes from a registry."""


def tag_for(subject: Digest) -> str:
    """The referrers tag schema's tag for ``subject``: ``sha256-<hex>``."""
    return f"{subject.algorithm}-{subject.hex}"


def list_referrers(repo: RemoteRepository, subject: Digest, most: int) -> list[Descriptor]:
    """The referrers the registry lists for ``subject`` (the API's answer, or the tag index);
    more than ``most`` when it lists more."""
    listed = repo.referrers_api(subject, most)
    return list(_tag_index(repo, subject).manifests) if listed is None else listed


class Lister:
    """Lists referrers on one repository, at most ``MAX_REFERRERS`` in all: a registry's
    listing can be as long as its 4 MiB cap allows, and a walk follows each entry."""

    def __init__(self, repo: RemoteRepository) -> None:
        self.repo = repo
        self.listed = 0

    def __call__(self, subject: Digest) -> list[Descriptor]:
        found = list_referrers(self.repo, subject, MAX_REFERRERS - self.listed)
        self.listed += len(found)
        if self.listed > MAX_REFERRERS:
            raise RemoteError(f"{self.repo}: more than {MAX_REFERRERS} referrers of {subject}")
        return found


def record(repo: RemoteRepository, referrer: Descriptor, subject: Digest) -> None:
    """Add ``referrer`` to ``subject``'s tag index (read, add, write back), keeping the entries
    already there; nothing is written when it is listed already. Two clients recording at the
    same moment can lose one entry: the tag schema has no compare-and-swap."""
    index = _tag_index(repo, subject)
    if any(entry.digest == referrer.digest for entry in index.manifests):
        return
    updated = Index((*index.manifests, referrer))
    repo.push_manifest(tag_for(subject), manifests.encode(updated), mt.OCI_INDEX)


def _tag_index(repo: RemoteRepository, subject: Digest) -> Index:
    tag = tag_for(subject)
    try:
        data, media_type = repo.fetch_manifest(tag)
    except NotFound:
        return Index(())
    doc = manifests.parse(data, media_type)
    if not isinstance(doc, Index):
        raise RemoteError(f"{repo}:{tag}: holds a manifest, not a referrers index")
    return Index(tuple(doc.manifests))
