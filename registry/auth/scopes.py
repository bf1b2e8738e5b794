"""What a request needs, from its method and path alone (pure).

``GET /v2/team/model/manifests/v1`` needs ``pull`` on ``team/model``; uploads need ``push``;
DELETE needs ``delete``; ``/v2/`` needs only a known caller; ``/v2/_catalog`` the catalog scope;
``/metrics`` a signed-in user. The path is read with the router's own table (``routes``): a path
it does not parse needs ``unknown``, which nobody is granted, so a path the gate and the router
could read differently is denied rather than let through.
"""

from __future__ import annotations

from dataclasses import dataclass

from mdl.registry import routes

READ_METHODS = frozenset({"GET", "HEAD"})
PUBLIC_PATHS = frozenset({"/healthz", "/token"})
"""Answered without credentials: the health check, and the token endpoint (it checks its own)."""


@dataclass(frozen=True)
class Need:
    kind: str
    """``base`` (/v2/), ``catalog``, ``metrics``, ``repository``, ``ui`` (the browser, which
    filters by access itself), or ``unknown`` (denied)."""
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
    """The access a registry request needs, or None for the public paths."""
    if path in PUBLIC_PATHS:
        return None
    if path in ("/v2/", "/v2"):
        return Need("base")
    if path == "/v2/_catalog":
        return Need("catalog")
    if path == "/metrics":
        return Need("metrics")
    if path == "/ui" or path.startswith("/ui/"):
        return Need("ui")
    matched = routes.match(method, path)
    if matched is None:
        return Need("unknown")
    shape, params = matched
    if method in READ_METHODS:
        action = "pull"
    elif method == "DELETE" and shape.kind not in ("uploads", "upload"):
        action = "delete"
    else:
        action = "push"
    return Need("repository", params["name"], action)


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
