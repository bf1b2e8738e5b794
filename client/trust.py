"""Signatures of a model on a registry: verify it there, list its referrers, and admit a pull
under the trust policy. Only manifests, referrer listings and signature bundles are fetched,
never a file of the model, and the verification is ``store.signatures``' own."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from mdl.client.body import MANIFEST_BYTES
from mdl.client.connection import Connection
from mdl.client.referrers import Lister
from mdl.client.remote import RemoteRepository
from mdl.spec import manifest as manifests
from mdl.spec import mediatypes as mt
from mdl.spec import sigstore
from mdl.spec.descriptor import Descriptor
from mdl.spec.errors import RemoteError
from mdl.spec.manifest import Index, Manifest
from mdl.spec.policy import Policy
from mdl.spec.reference import Reference
from mdl.store.signatures import (
    Signed,
    Verified,
    bundle_layer,
    check_policy,
    tree_of,
    verify_signed,
)


def verify_remote(
    ref: Reference,
    key: ec.EllipticCurvePublicKey,
    detached: Iterable[bytes] = (),
    *,
    insecure: bool = False,
) -> tuple[Descriptor, list[Verified]]:
    """The model ``ref`` names on its registry, and its signatures there (and ``detached``
    ones) that verify with ``key``; raises SignatureError as ``verify_signed`` does."""
    remote_ref = ref.with_registry()
    assert remote_ref.registry
    with Connection(remote_ref.registry, insecure=insecure) as connection:
        repo = RemoteRepository(connection, remote_ref.repository)
        signed = signed_on(repo, repo.resolve_reference(remote_ref))
    extra = tuple((None, bundle) for bundle in detached)
    whole = Signed(signed.descriptor, signed.manifest, (*signed.bundles, *extra))
    return signed.descriptor, verify_signed(whole, key)


def discover_remote(ref: Reference, *, insecure: bool = False) -> dict[str, Any]:
    """The model ``ref`` names on its registry and its referrers there, as a tree."""
    remote_ref = ref.with_registry()
    assert remote_ref.registry
    with Connection(remote_ref.registry, insecure=insecure) as connection:
        repo = RemoteRepository(connection, remote_ref.repository)
        desc, _ = model_manifest(repo, repo.resolve_reference(remote_ref))
        return tree_of(desc, Lister(repo))


def admit(repo: RemoteRepository, root: Descriptor, ref: Reference, policy: Policy) -> None:
    """Raise SignatureError unless ``policy`` lets ``ref`` (root ``root``) in, judged by the
    signatures the registry holds for it; bundles are fetched only for ``signedBy``."""
    check_policy(policy, ref, lambda: signed_on(repo, root))


def signed_on(repo: RemoteRepository, root: Descriptor) -> Signed:
    """The model ``root`` names (an index: its first model, as the store loads it) and the
    signature bundles the registry lists as its referrers."""
    desc, manifest = model_manifest(repo, root)
    bundles = []
    for referrer in Lister(repo)(desc.digest):
        if referrer.extra.get("artifactType") != sigstore.BUNDLE_MEDIA_TYPE:
            continue
        data, media_type = repo.fetch_manifest(str(referrer.digest), referrer)
        doc = manifests.parse(data, media_type)
        if doc.subject is None or doc.subject.digest != desc.digest:
            continue  # listed, but a referrer of something else
        layer = bundle_layer(referrer.digest, doc)
        bundles.append((referrer.digest, repo.fetch_blob(layer, MANIFEST_BYTES)))
    return Signed(desc, manifest, tuple(bundles))


def model_manifest(repo: RemoteRepository, root: Descriptor) -> tuple[Descriptor, Manifest]:
    data, _ = repo.fetch_manifest(str(root.digest), root)
    doc = manifests.parse(data, root.media_type)
    if isinstance(doc, Index):
        models = [m for m in doc.manifests if m.media_type in mt.MANIFEST_TYPES]
        if not models:
            raise RemoteError(f"{repo}@{root.digest}: index holds no model manifest")
        return model_manifest(repo, models[0])
    return root, doc
