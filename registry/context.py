"""What every endpoint reaches through the request: the repositories, the uploads, the caller."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from starlette.requests import Request

from mdl.registry.repos import Repositories
from mdl.registry.sessions import Uploads

if TYPE_CHECKING:
    from mdl.registry.proxy import Proxy

ACCESS_SCOPE_KEY = "mdl.access"


class Access(Protocol):
    """What the authenticated caller may do (set on the scope by the auth middleware)."""

    user: str | None

    def can(self, name: str, action: str) -> bool: ...


@dataclass(frozen=True)
class Registry:
    repos: Repositories
    uploads: Uploads
    open_access: bool
    """No access control: anonymous cross-repository mounts are allowed."""
    redirect: bool = True
    """Blob GETs answer 307 to the storage's presigned URL, when it has one."""
    proxy: Proxy | None = None
    """Set when the registry is a pull-through cache of an upstream (``--proxy``)."""


def registry(request: Request) -> Registry:
    state: Registry = request.app.state.registry
    return state


def may(request: Request, name: str, action: str) -> bool:
    """Whether the caller may ``action`` (pull, push, delete) on repository ``name``."""
    access: Access | None = request.scope.get(ACCESS_SCOPE_KEY)
    return access is None or access.can(name, action)
