"""The trust policy: which models may enter the store and be served. Shaped like containers'
``policy.json`` (``man containers-policy.json``)::

    {"default": [{"type": "insecureAcceptAnything"}],
     "transports": {"docker": {
         "registry.example.com": [{"type": "reject"}],
         "registry.example.com/team": [{"type": "signedBy", "keyPath": "team.pub"}],
         "registry.example.com/team/llama": [{"type": "signedBy", "keyPaths": ["a.pub", "b.pub"]}]
     }}}

The most specific scope that names a model's repository applies: the repository
(``host/ns/name``), then each enclosing namespace, then the host, then ``default``; a model
without a registry (built here) gets ``default``. Every requirement of the scope must hold:
``insecureAcceptAnything`` always does, ``reject`` never does, ``signedBy`` when a signature of
the model (model-signing or cosign format) verifies with one of its keys (``keyPath``,
``keyPaths`` relative to the policy file, or ``keyData``: a base64 PEM). Pure: the caller hands
in the bytes and a function that reads a key file.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mdl.spec.errors import SignatureError
from mdl.spec.reference import Reference


class Kind(StrEnum):
    ACCEPT = "insecureAcceptAnything"
    REJECT = "reject"
    SIGNED_BY = "signedBy"


@dataclass(frozen=True)
class Requirement:
    kind: Kind
    keys: tuple[bytes, ...] = ()
    """PEM public keys, for ``signedBy``."""


ACCEPT_ANYTHING = (Requirement(Kind.ACCEPT),)


@dataclass(frozen=True)
class Policy:
    where: str
    default: tuple[Requirement, ...] = ACCEPT_ANYTHING
    scopes: Mapping[str, tuple[Requirement, ...]] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: bytes, where: str, read_key: Callable[[str], bytes]) -> Policy:
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise SignatureError(f"{where}: not JSON: {exc}") from None
        if not isinstance(doc, dict) or "default" not in doc:
            raise SignatureError(f"{where}: want an object with a 'default' requirement list")
        transports = doc.get("transports", {})
        docker = transports.get("docker", {}) if isinstance(transports, dict) else None
        if not isinstance(docker, dict):
            raise SignatureError(f"{where}: 'transports.docker' must map scopes to requirements")
        return cls(
            where,
            _requirements(doc["default"], f"{where}: default", read_key),
            {
                scope.rstrip("/"): _requirements(reqs, f"{where}: {scope}", read_key)
                for scope, reqs in docker.items()
            },
        )

    def scope_of(self, ref: Reference) -> str:
        """The scope whose requirements apply to ``ref`` ('default' when none names it)."""
        if ref.registry:
            parts = [ref.registry, *ref.repository.split("/")]
            for end in range(len(parts), 0, -1):
                scope = "/".join(parts[:end])
                if scope in self.scopes:
                    return scope
        return "default"

    def requirements(self, ref: Reference) -> tuple[Requirement, ...]:
        scope = self.scope_of(ref)
        return self.default if scope == "default" else self.scopes[scope]


def _requirements(
    value: Any, where: str, read_key: Callable[[str], bytes]
) -> tuple[Requirement, ...]:
    if not isinstance(value, list) or not value:
        raise SignatureError(f"{where}: want a non-empty list of requirements")
    return tuple(_requirement(item, where, read_key) for item in value)


def _requirement(item: Any, where: str, read_key: Callable[[str], bytes]) -> Requirement:
    if not isinstance(item, dict):
        raise SignatureError(f"{where}: a requirement must be an object")
    try:
        kind = Kind(str(item.get("type")))
    except ValueError:
        kinds = ", ".join(k.value for k in Kind)
        raise SignatureError(f"{where}: type {item.get('type')!r}: want one of {kinds}") from None
    if kind is not Kind.SIGNED_BY:
        return Requirement(kind)
    paths = item.get("keyPaths", [item["keyPath"]] if "keyPath" in item else [])
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise SignatureError(f"{where}: keyPaths must be a list of file names")
    keys = [read_key(path) for path in paths]
    if "keyData" in item:
        try:
            keys.append(base64.b64decode(str(item["keyData"]), validate=True))
        except (binascii.Error, ValueError):
            raise SignatureError(f"{where}: keyData is not base64") from None
    if not keys:
        raise SignatureError(f"{where}: signedBy needs keyPath, keyPaths or keyData")
    return Requirement(kind, tuple(keys))
