"""What a request needs, from its method and path alone (pure).

``GET /v2/team/model/manifests/v1`` needs ``pull`` on ``team/model``; uploads need ``push``;
DELETE needs ``delete``; ``/v2/`` needs only a known caller; ``/v2/_catalog`` the catalog scope.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_REPOSITORY_PATH = re.compile(
    r"/v2/(?P<name>.+)/(?:tags/list|manifests/[^/]+|blobs/uploads/[^/]*|blobs/[^/]+|referrers/[^/]+)"
)
READ_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class Need:
    kind: str
    """``base`` (/v2/), ``catalog``, or ``repository``."""
    name: str = ""
    action: str = ""

    @property
    def scope(self) -> str:
        """The token scope that grants it, as a ``WWW-Authenticate`` challenge names it."""
        if self.kind == "catalog":
            return "registry:catalog:*"
        if self.kind == "repository":
            actions = "pull" if self.action == "pull" else f"pull,{self.action}"
            return f"repository:{self.name}:{actions}"
        return ""


def need(method: str, path: str) -> Need | None:
    """The access a registry request needs, or None for paths outside ``/v2/``."""
    if path == "/v2/" or path == "/v2":
        return Need("base")
    if path == "/v2/_catalog":
        return Need("catalog")
    match = _REPOSITORY_PATH.fullmatch(path)
    if not match:
        return Need("base") if path.startswith("/v2/") else None
    if method in READ_METHODS:
        action = "pull"
    elif method == "DELETE" and "/blobs/uploads/" not in path:
        action = "delete"
    else:
        action = "push"
    return Need("repository", match.group("name"), action)


@dataclass(frozen=True)
class RequestedScope:
    """One ``scope`` parameter of a token request: ``repository:<name>:<actions>``."""

    kind: str
    name: str
    actions: frozenset[str]

    @classmethod
    def parse(cls, text: str) -> RequestedScope | None:
        kind, _, rest = text.partition(":")
        name, _, actions = rest.rpartition(":")
        if kind not in ("repository", "registry") or not name:
            return None
        return cls(kind, name, frozenset(a for a in actions.split(",") if a))
