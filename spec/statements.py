"""The in-toto statements mdl signs: OpenSSF model-signing's file list, and cosign's manifest sign.

A model-signing statement (predicate ``https://model_signing/signature/v1.0``) lists every file
with its SHA-256, sorted by name; its one subject is the model's name with a SHA-256 over the
file digests' raw bytes in that order. Because every file of an mdl model is a raw layer whose
digest is the file's SHA-256, the statement comes from the manifest alone, no blob read.

A cosign sign statement (predicate ``https://sigstore.dev/cosign/sign/v1``) has the manifest
digest as its subject and an empty predicate. Pure.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from mdl.spec.digest import Digest
from mdl.spec.errors import InvalidReference, SignatureError
from mdl.spec.mediatypes import WEIGHTS_FILE
from mdl.spec.sigstore import STATEMENT_TYPE

MODEL_SIGNING_PREDICATE = "https://model_signing/signature/v1.0"
COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
IGNORE_PATHS = (".git", ".gitattributes", ".github", ".gitignore")
"""What model-signing leaves out of a directory by default; recorded so its verifier agrees."""


def model_statement(name: str, files: Mapping[str, Digest]) -> dict[str, Any]:
    """The model-signing statement over ``files`` (file path -> SHA-256 digest)."""
    for path, digest in files.items():
        if digest.algorithm != "sha256":
            raise SignatureError(f"{path}: {digest}: model-signing records SHA-256 only")
    names = sorted(files)
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {"sha256": _root([files[n] for n in names])}}],
        "predicateType": MODEL_SIGNING_PREDICATE,
        "predicate": {
            "serialization": {
                "method": "files",
                "hash_type": "sha256",
                "allow_symlinks": False,
                "ignore_paths": list(IGNORE_PATHS),
            },
            "resources": [
                {"name": n, "algorithm": "sha256", "digest": files[n].hex} for n in names
            ],
        },
    }


def signed_files(statement: Mapping[str, Any]) -> dict[str, Digest]:
    """The files a model-signing statement vouches for, once its subject digest agrees."""
    if statement.get("predicateType") != MODEL_SIGNING_PREDICATE:
        raise SignatureError(f"statement: predicate {statement.get('predicateType')!r}")
    predicate = _mapping(statement.get("predicate"), "predicate")
    serialization = _mapping(predicate.get("serialization"), "serialization")
    if serialization.get("method") != "files" or serialization.get("hash_type") != "sha256":
        raise SignatureError("statement: only files serialized with sha256 are supported")
    resources = predicate.get("resources")
    if not isinstance(resources, list):
        raise SignatureError("statement: no resources")
    files: dict[str, Digest] = {}
    for resource in resources:
        entry = _mapping(resource, "resource")
        name, hex_digest = entry.get("name"), entry.get("digest")
        if not isinstance(name, str) or not isinstance(hex_digest, str) or name in files:
            raise SignatureError("statement: a resource without a unique name and digest")
        files[name] = _sha256(hex_digest)
    subject_digest = _subject_digest(statement)
    if _root([files[n] for n in sorted(files)]) != subject_digest:
        raise SignatureError("statement: the subject digest does not match the file digests")
    return files


def match_files(
    model: Mapping[str, Digest], signed: Mapping[str, Digest]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Which files of a model (path -> digest) a signature covers, and which it does not.

    A signed file must be in the model under its name with the same digest; the weights may be
    signed under their original name (``FROM DIR`` stores ``x.gguf`` as ``model.gguf``), and
    they must be covered."""
    unmatched = dict(signed)
    covered, unsigned = [], []
    for path, digest in model.items():
        renamed = [n for n, d in unmatched.items() if d == digest and n.endswith(".gguf")]
        if path in unmatched:
            if unmatched.pop(path) != digest:
                raise SignatureError(f"{path}: its digest {digest} is not the one signed")
            covered.append(path)
        elif path == WEIGHTS_FILE and len(renamed) == 1:
            del unmatched[renamed[0]]
            covered.append(path)
        else:
            unsigned.append(path)
    if WEIGHTS_FILE in model and WEIGHTS_FILE not in covered:
        raise SignatureError(f"{WEIGHTS_FILE}: the weights are not covered by the signature")
    if unmatched:
        raise SignatureError(f"{', '.join(sorted(unmatched))}: signed but not in the model")
    return tuple(sorted(covered)), tuple(sorted(unsigned))


def cosign_statement(name: str, manifest: Digest) -> dict[str, Any]:
    """cosign's sign statement for a manifest: ``name`` is the repository it was signed in."""
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {manifest.algorithm: manifest.hex}}],
        "predicateType": COSIGN_SIGN_PREDICATE,
        "predicate": {},
    }


def signed_manifest(statement: Mapping[str, Any]) -> Digest:
    """The manifest digest a cosign sign statement vouches for."""
    if statement.get("predicateType") != COSIGN_SIGN_PREDICATE:
        raise SignatureError(f"statement: predicate {statement.get('predicateType')!r}")
    return _sha256(_subject_digest(statement))


def _root(digests: list[Digest]) -> str:
    hasher = hashlib.sha256()
    for digest in digests:
        hasher.update(bytes.fromhex(digest.hex))
    return hasher.hexdigest()


def _subject_digest(statement: Mapping[str, Any]) -> str:
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or len(subjects) != 1:
        raise SignatureError("statement: want exactly one subject")
    digest = _mapping(_mapping(subjects[0], "subject").get("digest"), "subject digest")
    value = digest.get("sha256")
    if not isinstance(value, str):
        raise SignatureError("statement: the subject has no sha256 digest")
    return value


def _sha256(hex_digest: str) -> Digest:
    try:
        return Digest.parse(f"sha256:{hex_digest}")
    except InvalidReference:
        raise SignatureError(f"statement: {hex_digest!r} is not a SHA-256 digest") from None


def _mapping(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SignatureError(f"statement: {what} is not an object")
    return value
