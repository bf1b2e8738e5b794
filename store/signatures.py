"""Sign a stored model and verify its signatures, from the manifest alone (no blob is read).

Here, below the client and the runtime, because pull and serve check signatures too.

A signature is a Sigstore bundle kept as an OCI 1.1 referrer of the model's manifest, in
cosign v3's layout: a manifest with ``artifactType`` and one layer of the bundle media type,
the empty config, ``subject`` = the signed manifest, and the annotations cosign writes
(``dev.sigstore.bundle.content``, ``dev.sigstore.bundle.predicateType``).

Two statements can be signed: OpenSSF model-signing's (every file of the model by the name
``mdl export`` writes, with its SHA-256: the layer digest), which ``model_signing verify key``
accepts over an exported directory; and cosign's (the manifest digest), for cluster policies
that verify OCI artifacts. A model-signing signature covers the files, not the config; a
cosign signature covers the manifest and so everything it names.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from mdl.spec import mediatypes as mt
from mdl.spec import sigstore, statements
from mdl.spec.descriptor import Descriptor
from mdl.spec.digest import Digest
from mdl.spec.errors import SignatureError
from mdl.spec.manifest import Index, Manifest, encode
from mdl.spec.modelpack import ModelFiles
from mdl.spec.policy import Kind, Policy
from mdl.spec.reference import Reference
from mdl.store import layout
from mdl.store.models import StoredModel
from mdl.store.store import Store

ANNOTATION_BUNDLE_CONTENT = "dev.sigstore.bundle.content"
ANNOTATION_PREDICATE_TYPE = "dev.sigstore.bundle.predicateType"
EMPTY_CONFIG = b"{}"
_MAX_DEPTH = 8


class SignatureFormat(StrEnum):
    MODEL_SIGNING = "model-signing"
    COSIGN = "cosign"


@dataclass(frozen=True)
class Verified:
    """One signature that verified: which referrer, over what, for which files."""

    signature: Digest | None
    """The referrer manifest's digest; None for a detached signature file."""
    predicate_type: str
    files: tuple[str, ...]
    unsigned: tuple[str, ...] = ()
    """Files of the model a detached signature does not cover (attached ones cover all)."""


@dataclass(frozen=True)
class Signed:
    """A model's manifest and the signature bundles found for it, in a store or a registry:
    all that verifying needs (no blob of the model is read)."""

    descriptor: Descriptor
    manifest: Manifest
    bundles: Sequence[tuple[Digest | None, bytes]]
    """(referrer digest, bundle); None for a detached signature file."""


def sign(
    store: Store,
    model: StoredModel,
    name: str,
    key: ec.EllipticCurvePrivateKey,
    fmt: SignatureFormat = SignatureFormat.MODEL_SIGNING,
) -> Descriptor:
    """Sign ``model`` (known as repository ``name``) and attach the signature; its descriptor."""
    if fmt is SignatureFormat.COSIGN:
        return sign_subject(store, model.descriptor, name, key)
    statement = statements.model_statement(name, _file_digests(model.descriptor, model.manifest))
    return attach_bundle(store, model.descriptor, sigstore.sign_bundle(statement, key))


def sign_subject(
    store: Store, subject: Descriptor, name: str, key: ec.EllipticCurvePrivateKey
) -> Descriptor:
    """A cosign signature of any manifest in the store (a model, an SBOM, a provenance
    statement), attached to it; its descriptor."""
    statement = statements.cosign_statement(name, subject.digest)
    return attach_bundle(store, subject, sigstore.sign_bundle(statement, key))


def attach_bundle(store: Store, subject: Descriptor, bundle: bytes) -> Descriptor:
    """Store ``bundle`` as a referrer of ``subject`` in cosign v3's layout; its descriptor."""
    annotations = {
        ANNOTATION_BUNDLE_CONTENT: "dsse-envelope",
        ANNOTATION_PREDICATE_TYPE: _predicate_type(bundle),
    }
    return attach_document(store, subject, sigstore.BUNDLE_MEDIA_TYPE, bundle, annotations)


def attach_document(
    store: Store,
    subject: Descriptor,
    artifact_type: str,
    data: bytes,
    annotations: Mapping[str, str] | None = None,
) -> Descriptor:
    """Store ``data`` as a one-layer OCI 1.1 artifact whose ``subject`` is ``subject`` (the
    empty config, ``artifactType`` = the layer's media type) and attach it; its descriptor."""
    annotations = dict(annotations or {})
    with store.writing():
        config = store.put_bytes(mt.OCI_EMPTY, EMPTY_CONFIG)
        layer = store.put_bytes(artifact_type, data)
        manifest = Manifest(
            config=config,
            layers=(layer,),
            artifact_type=artifact_type,
            subject=Descriptor(subject.media_type, subject.digest, subject.size),
            annotations=annotations,
        )
        desc = store.put_bytes(mt.OCI_MANIFEST, encode(manifest))
        referrer = Descriptor(
            desc.media_type, desc.digest, desc.size, annotations, {"artifactType": artifact_type}
        )
        store.attach(referrer, subject.digest)
    return referrer


def signatures(store: Store, subject: Digest) -> list[tuple[Descriptor, bytes]]:
    """The signature referrers of ``subject`` with their bundles, in index order."""
    return [
        (referrer, bundle_of(store, referrer))
        for referrer in store.referrers(subject)
        if referrer.extra.get("artifactType") == sigstore.BUNDLE_MEDIA_TYPE
    ]


def bundle_of(store: Store, referrer: Descriptor) -> bytes:
    """The bundle a signature referrer holds."""
    return store.read_blob(bundle_layer(referrer.digest, store.read_manifest(referrer)))


def bundle_layer(referrer: Digest, doc: Manifest | Index) -> Descriptor:
    """The one bundle layer of a signature referrer's manifest."""
    layers = doc.layers if isinstance(doc, Manifest) else ()
    bundles = [layer for layer in layers if layer.media_type == sigstore.BUNDLE_MEDIA_TYPE]
    if len(bundles) != 1:
        raise SignatureError(f"{referrer}: not a signature (want one bundle layer)")
    return bundles[0]


def referrer_tree(store: Store, subject: Descriptor) -> dict[str, Any]:
    """``subject`` and its referrers, recursively (a signature of an SBOM), as JSON."""
    return tree_of(subject, store.referrers)


def tree_of(
    subject: Descriptor, referrers: Callable[[Digest], list[Descriptor]], depth: int = 0
) -> dict[str, Any]:
    """``subject`` and what ``referrers`` lists for it, recursively, as JSON."""
    node: dict[str, Any] = {
        "mediaType": subject.media_type,
        "digest": str(subject.digest),
        "size": subject.size,
    }
    if "artifactType" in subject.extra:
        node["artifactType"] = subject.extra["artifactType"]
    if subject.annotations:
        node["annotations"] = dict(subject.annotations)
    if depth < _MAX_DEPTH:
        node["referrers"] = [tree_of(r, referrers, depth + 1) for r in referrers(subject.digest)]
    return node


def verify(
    store: Store,
    model: StoredModel,
    key: ec.EllipticCurvePublicKey,
    detached: Iterable[bytes] = (),
) -> list[Verified]:
    """Every signature of ``model`` (attached in the store, or ``detached``) that verifies with
    ``key`` and matches the model; see ``verify_signed``."""
    signed = signed_in_store(store, model)
    extra = tuple((None, bundle) for bundle in detached)
    return verify_signed(Signed(signed.descriptor, signed.manifest, (*signed.bundles, *extra)), key)


def signed_in_store(store: Store, model: StoredModel) -> Signed:
    """The model's manifest and the bundles attached to it in the store."""
    attached = tuple(
        (referrer.digest, bundle) for referrer, bundle in signatures(store, model.descriptor.digest)
    )
    return Signed(model.descriptor, model.manifest, attached)


def verify_signed(signed: Signed, key: ec.EllipticCurvePublicKey) -> list[Verified]:
    """Every bundle of ``signed`` that verifies with ``key`` and matches the manifest.

    Raises SignatureError when none does. A bundle signed with the key but vouching for other
    content (the model was changed after signing, or a signature of another model was attached
    to this one) is named in that error; it does not hide a genuine signature beside it, so
    whoever can attach referrers cannot make a good model fail.
    """
    subject = signed.descriptor.digest
    if not signed.bundles:
        raise SignatureError(f"{subject}: the model has no signature")
    verified, refused, mismatched = [], [], []
    for digest, bundle in signed.bundles:
        try:
            statement = sigstore.open_bundle(bundle, key)
        except SignatureError as exc:
            refused.append(str(exc))
            continue
        try:
            verified.append(_check(signed, digest, statement))
        except SignatureError as exc:
            mismatched.append(str(exc))
    if verified:
        return verified
    if mismatched:
        raise SignatureError(mismatched[0])
    reasons = "; ".join(sorted(set(refused)))
    raise SignatureError(
        f"{subject}: no signature verifies with this key ({len(signed.bundles)} checked: {reasons})"
    )


def _check(signed: Signed, digest: Digest | None, statement: Mapping[str, object]) -> Verified:
    predicate = str(statement.get("predicateType"))
    subject = signed.descriptor.digest
    if predicate == statements.COSIGN_SIGN_PREDICATE:
        named = statements.signed_manifest(statement)
        if named != subject:
            raise SignatureError(f"{subject}: signed is manifest {named}")
        return Verified(digest, predicate, tuple(sorted(ModelFiles.of(signed.manifest).files)))
    files = _file_digests(signed.descriptor, signed.manifest)
    covered, unsigned = statements.match_files(files, statements.signed_files(statement))
    if unsigned and digest is not None:
        raise SignatureError(f"{', '.join(unsigned)}: not covered by signature {digest}")
    return Verified(digest, predicate, covered, unsigned)


def _file_digests(desc: Descriptor, manifest: Manifest) -> dict[str, Digest]:
    """File path -> digest for every layer; a layer without a path cannot be signed."""
    files = {path: layer.digest for path, layer in ModelFiles.of(manifest).files.items()}
    if len(files) != len(manifest.layers):
        raise SignatureError(
            f"{desc.digest}: a layer has no {mt.ANNOTATION_FILEPATH} and no file name"
        )
    return files


def _predicate_type(bundle: bytes) -> str:
    predicate = sigstore.peek_statement(bundle).get("predicateType")
    if not isinstance(predicate, str):
        raise SignatureError("signature: the statement has no predicate type")
    return predicate


def load_policy(path: Path | None = None) -> Policy:
    """The policy at ``path`` (default: ``$MDL_POLICY``, else ``$MDL_HOME/policy.json``); a
    missing default file accepts anything, a missing named one is an error."""
    chosen = path or layout.policy_file(layout.home())
    try:
        data = chosen.read_bytes()
    except FileNotFoundError:
        if path is None and not os.environ.get("MDL_POLICY"):
            return Policy(str(chosen))
        raise SignatureError(f"{chosen}: no such policy file") from None
    except OSError as exc:
        raise SignatureError(f"{chosen}: {exc.strerror}") from None

    def read_key(name: str) -> bytes:
        key_path = chosen.parent / name
        try:
            return key_path.read_bytes()
        except OSError as exc:
            raise SignatureError(f"{chosen}: key {key_path}: {exc.strerror}") from None

    return Policy.parse(data, str(chosen), read_key)


def enforce(store: Store, model: StoredModel, ref: Reference, policy: Policy) -> None:
    """Raise SignatureError unless every requirement of ``ref``'s scope holds for ``model``."""
    check_policy(policy, ref, lambda: signed_in_store(store, model))


def check_policy(policy: Policy, ref: Reference, signed: Callable[[], Signed]) -> None:
    """Raise SignatureError unless every requirement of ``ref``'s scope holds; ``signed`` is
    asked for the model and its bundles only when a requirement needs them."""
    scope = policy.scope_of(ref)
    found: Signed | None = None
    for requirement in policy.requirements(ref):
        if requirement.kind is Kind.REJECT:
            raise SignatureError(f"{ref}: refused by the trust policy ({policy.where}: {scope})")
        if requirement.kind is Kind.SIGNED_BY:
            found = found or signed()
            if not _signed_by(found, requirement.keys):
                raise SignatureError(
                    f"{ref}: no signature by a key the trust policy trusts "
                    f"({policy.where}: {scope} requires signedBy)"
                )


def _signed_by(signed: Signed, keys: Iterable[bytes]) -> bool:
    for key in [sigstore.load_public_key(pem) for pem in keys]:
        try:
            verify_signed(signed, key)
        except SignatureError:
            continue
        return True
    return False
