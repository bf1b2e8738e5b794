"""Short-lived bearer tokens: compact JWS (JWT) signed with Ed25519 via ``cryptography``.

Claims: ``iss`` (mdl), ``sub`` (the user, absent for anonymous), ``aud`` (the service),
``iat``/``nbf``/``exp``, ``jti`` and docker's ``access`` list
``[{"type": "repository", "name": …, "actions": […]}]``. The key is a PEM file kept beside the
storage (created 0600 on first use) so tokens outlive a restart and every worker shares it.
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ISSUER = "mdl"
HEADER = {"alg": "EdDSA", "typ": "JWT"}


class InvalidToken(Exception):
    """A token that is malformed, forged, for another service, or expired."""


@dataclass(frozen=True)
class Claims:
    user: str | None
    access: dict[str, frozenset[str]]
    """``repository name -> actions``; the catalog appears as ``registry:catalog``."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The signing key in ``path`` (PEM, PKCS#8), made on first use with mode 0600."""
    if not path.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 private key")
    return loaded


class TokenIssuer:
    def __init__(self, key: Ed25519PrivateKey, service: str, ttl: int) -> None:
        self.key = key
        self.service = service
        self.ttl = ttl

    def issue(self, user: str | None, access: dict[str, frozenset[str]]) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": self.service,
            "iat": now,
            "nbf": now - 5,
            "exp": now + self.ttl,
            "jti": uuid.uuid4().hex,
            "access": [_access_entry(name, sorted(actions)) for name, actions in access.items()],
        }
        if user is not None:
            claims["sub"] = user
        signing_input = f"{_b64(json.dumps(HEADER).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = self.key.sign(signing_input.encode())
        return f"{signing_input}.{_b64(signature)}"

    def verify(self, token: str) -> Claims:
        try:
            header_text, claims_text, signature_text = token.split(".")
            self.key.public_key().verify(
                _unb64(signature_text), f"{header_text}.{claims_text}".encode()
            )
            header = json.loads(_unb64(header_text))
            claims = json.loads(_unb64(claims_text))
        except (ValueError, InvalidSignature, UnicodeDecodeError) as exc:
            raise InvalidToken(str(exc) or type(exc).__name__) from None
        if header != HEADER or not isinstance(claims, dict):
            raise InvalidToken("unexpected token header")
        now = time.time()
        if claims.get("iss") != ISSUER or claims.get("aud") != self.service:
            raise InvalidToken("token for another issuer or service")
        if not (claims.get("nbf", 0) <= now < claims.get("exp", 0)):
            raise InvalidToken("token expired")
        return Claims(claims.get("sub"), _access_map(claims.get("access", [])))


def _access_entry(name: str, actions: list[str]) -> dict[str, Any]:
    if name == "registry:catalog":
        return {"type": "registry", "name": "catalog", "actions": actions}
    return {"type": "repository", "name": name, "actions": actions}


def _access_map(entries: Any) -> dict[str, frozenset[str]]:
    access: dict[str, frozenset[str]] = {}
    if not isinstance(entries, list):
        return access
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            key = "registry:catalog" if entry.get("type") == "registry" else entry["name"]
            actions = entry.get("actions")
            if isinstance(actions, list):
                access[key] = frozenset(a for a in actions if isinstance(a, str))
    return access
