"""``mdl build --provenance / --sbom / --sign``: what a build attaches to the model it built.

The provenance statement and the ML-BOM (spec/attestations.py) become OCI 1.1 referrers of the
model's manifest (``application/vnd.in-toto+json``, ``application/vnd.cyclonedx+json``). With a
key, the model is signed (OpenSSF model-signing) and each attestation gets a cosign signature
of its own manifest, so a verifier trusts it only with the key. Everything is deterministic:
the same build gives the same referrer digests.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version

from cryptography.hazmat.primitives.asymmetric import ec

from mdl.builder.build import BuildResult
from mdl.spec import attestations
from mdl.spec.digest import Digest
from mdl.spec.modelfile import Modelfile, format_modelfile
from mdl.spec.parameters import ParamValue
from mdl.store import signatures
from mdl.store.models import load_manifest
from mdl.store.signatures import SignatureFormat
from mdl.store.store import Store


@dataclass(frozen=True)
class Attached:
    """One referrer a build attached: what it is and its manifest digest."""

    kind: str
    digest: Digest


def facts_of(
    store: Store,
    result: BuildResult,
    modelfile: Modelfile,
    labels: dict[str, str],
    epoch: int | None,
) -> attestations.BuildFacts:
    """What the build knew, for its attestations: ``result`` and the Modelfile it ran."""
    name = result.tags[0].name if result.tags else str(result.descriptor.digest)
    model = load_manifest(store, result.descriptor)
    licenses = tuple(store.read_blob(desc).decode() for desc in model.files.licenses)
    parameters: dict[str, ParamValue] = dict(modelfile.parameters)
    return attestations.BuildFacts(
        name=name,
        version=result.tags[0].tag if result.tags else None,
        manifest=result.descriptor.digest,
        config=result.config,
        files={path: desc.digest for path, desc in model.files.files.items()},
        modelfile_path=modelfile.path,
        modelfile_text=format_modelfile(modelfile),
        sources=result.sources,
        base=result.base,
        adapters=tuple(path for path, _ in model.files.adapters),
        licenses=licenses,
        parameters=parameters,
        tags=tuple(str(t) for t in result.tags),
        labels=labels,
        source_date_epoch=epoch,
        builder_version=version("mdl"),
    )


def attach(
    store: Store,
    result: BuildResult,
    facts: attestations.BuildFacts,
    *,
    provenance: bool,
    sbom: bool,
    key: ec.EllipticCurvePrivateKey | None,
) -> list[Attached]:
    """Attach what was asked for to the built model; returns the referrers, in order."""
    attached: list[Attached] = []
    documents = []
    if provenance:
        data = attestations.encode(attestations.provenance(facts))
        documents.append(("provenance", attestations.IN_TOTO_MEDIA_TYPE, data))
    if sbom:
        documents.append(
            (
                "sbom",
                attestations.CYCLONEDX_MEDIA_TYPE,
                attestations.encode(attestations.ml_bom(facts)),
            )
        )
    for kind, media_type, data in documents:
        referrer = signatures.attach_document(store, result.descriptor, media_type, data)
        attached.append(Attached(kind, referrer.digest))
        if key is not None:
            signed = signatures.sign_subject(store, referrer, facts.name, key)
            attached.append(Attached(f"signature of {kind}", signed.digest))
    if key is not None:
        model = load_manifest(store, result.descriptor)
        signature = signatures.sign(store, model, facts.name, key, SignatureFormat.MODEL_SIGNING)
        attached.append(Attached("signature", signature.digest))
    return attached
