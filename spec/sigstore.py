"""Sigstore bundles v0.3 with a DSSE envelope, signed and verified offline with an EC key.

The shape is the one OpenSSF model-signing writes for ``sign key`` (and cosign for key-signed
attestations)::

    {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
     "verificationMaterial": {"publicKey": {"hint": <sha256 hex of the public key's PEM>},
                              "tlogEntries": []},
     "dsseEnvelope": {"payload": <base64 statement>, "payloadType": "application/vnd.in-toto+json",
                      "signatures": [{"sig": <base64 DER ECDSA over PAE(type, payload)>,
                                      "keyid": ""}]}}

Signatures use deterministic ECDSA (RFC 6979), so signing the same statement with the same key
gives the same bundle bytes, and so the same referrer digest. Pure: keys come in as PEM bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mdl.spec.errors import SignatureError

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"

_CURVE_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "secp256r1": hashes.SHA256,
    "secp384r1": hashes.SHA384,
    "secp521r1": hashes.SHA512,
}


def generate_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def private_pem(key: ec.EllipticCurvePrivateKey, passphrase: bytes | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def public_pem(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_private_key(pem: bytes, passphrase: bytes | None = None) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, passphrase)
    except TypeError as exc:  # a passphrase given for a plain key, or missing for an encrypted one
        raise SignatureError(f"private key: {exc}") from None
    except ValueError:
        raise SignatureError("private key: not a PEM key, or a wrong passphrase") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise SignatureError("private key: not an elliptic-curve key")
    _hash_for(key.public_key())
    return key


def load_public_key(pem: bytes) -> ec.EllipticCurvePublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError:
        raise SignatureError("public key: not a PEM public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise SignatureError("public key: not an elliptic-curve key")
    _hash_for(key)
    return key


def key_hint(key: ec.EllipticCurvePublicKey) -> str:
    """The key's identifier in a bundle: the SHA-256 of its PEM (as model-signing records it)."""
    return hashlib.sha256(public_pem(key)).hexdigest()


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what the signature is over."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def sign_bundle(statement: Mapping[str, Any], key: ec.EllipticCurvePrivateKey) -> bytes:
    """A bundle whose envelope carries ``statement``, signed with ``key``; canonical JSON."""
    payload = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
    algorithm = _hash_for(key.public_key())
    signature = key.sign(
        pae(IN_TOTO_PAYLOAD_TYPE, payload), ec.ECDSA(algorithm, deterministic_signing=True)
    )
    bundle = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {
            "publicKey": {"hint": key_hint(key.public_key())},
            "tlogEntries": [],
        },
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode(),
            "payloadType": IN_TOTO_PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(signature).decode(), "keyid": ""}],
        },
    }
    return json.dumps(bundle, sort_keys=True, separators=(",", ":")).encode()


def open_bundle(data: bytes, key: ec.EllipticCurvePublicKey) -> dict[str, Any]:
    """The in-toto statement a bundle carries, once its signature verifies with ``key``."""
    envelope = _envelope(data)
    if envelope.get("payloadType") != IN_TOTO_PAYLOAD_TYPE:
        raise SignatureError(f"signature: payload type {envelope.get('payloadType')!r}")
    payload = _b64(envelope.get("payload"), "payload")
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or not signatures:
        raise SignatureError("signature: the envelope holds no signature")
    message, algorithm = pae(IN_TOTO_PAYLOAD_TYPE, payload), _hash_for(key)
    for entry in signatures:
        sig = _b64(entry.get("sig") if isinstance(entry, dict) else None, "sig")
        try:
            key.verify(sig, message, ec.ECDSA(algorithm))
        except InvalidSignature:
            continue
        return _statement(payload)
    raise SignatureError("signature: does not verify with this public key")


def peek_statement(data: bytes) -> dict[str, Any]:
    """The statement a bundle carries, NOT verified: to label or pick a bundle, never to trust."""
    return _statement(_b64(_envelope(data).get("payload"), "payload"))


def _hash_for(key: ec.EllipticCurvePublicKey) -> hashes.HashAlgorithm:
    algorithm = _CURVE_HASHES.get(key.curve.name)
    if algorithm is None:
        raise SignatureError(f"key: curve {key.curve.name} is not supported (P-256/384/521)")
    return algorithm()


def _document(data: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise SignatureError("signature: not a JSON Sigstore bundle") from None
    if not isinstance(doc, dict) or doc.get("mediaType") != BUNDLE_MEDIA_TYPE:
        raise SignatureError(f"signature: not a {BUNDLE_MEDIA_TYPE} bundle")
    return doc


def _envelope(data: bytes) -> dict[str, Any]:
    envelope = _document(data).get("dsseEnvelope")
    if not isinstance(envelope, dict):
        raise SignatureError("signature: the bundle holds no DSSE envelope")
    return envelope


def _b64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise SignatureError(f"signature: {what} missing")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"signature: {what} is not base64") from None


def _statement(payload: bytes) -> dict[str, Any]:
    try:
        statement = json.loads(payload)
    except (ValueError, RecursionError):
        raise SignatureError("signature: the payload is not a JSON statement") from None
    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
        raise SignatureError(f"signature: the payload is not an {STATEMENT_TYPE}")
    return statement
