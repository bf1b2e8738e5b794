"""The access middleware: read-only mode, then who the caller is, then what they may do.

No credentials means anonymous (policy grants for ``anonymous`` still apply). A missing right
gives 401 with a challenge when new credentials could help (anonymous caller, or a token that
lacks a scope the user's policy allows), and 403 DENIED when the user may not do it at all.
Basic mode challenges with ``Basic realm=…``; token mode with
``Bearer realm=…,service=…,scope=…`` pointing at this registry's ``/token``. Every value a
challenge quotes is checked first (the name by the spec's grammar, the Host as a host), so a
request cannot add parameters to it. Failed logins are throttled per client address.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from mdl.registry import names
from mdl.registry.auth import scopes
from mdl.registry.auth.htpasswd import Htpasswd
from mdl.registry.auth.policy import Policy
from mdl.registry.auth.throttle import LoginThrottle
from mdl.registry.auth.tokens import InvalidToken, TokenIssuer
from mdl.registry.context import ACCESS_SCOPE_KEY
from mdl.registry.errors import ErrorCode, OCIError, response
from mdl.spec.reference import is_host

BASIC_REALM = "mdl-registry"
CATALOG = "registry:catalog"


@dataclass(frozen=True)
class AuthSettings:
    htpasswd: Htpasswd | None
    """Users and their bcrypt hashes (basic auth, and the ``/token`` endpoint's login)."""
    policy: Policy
    issuer: TokenIssuer | None = None
    """Set in token mode."""
    realm: str | None = None
    """The token endpoint URL to advertise; default ``<scheme>://<host>/token``."""
    throttle: LoginThrottle = field(default_factory=LoginThrottle)


@dataclass(frozen=True)
class PolicyAccess:
    """A caller known by name (or anonymous): the policy decides each action."""

    user: str | None
    policy: Policy

    def can(self, name: str, action: str) -> bool:
        if action == CATALOG:
            return self.user is not None
        return action in self.policy.allowed(self.user, name)


@dataclass(frozen=True)
class TokenAccess:
    """A bearer token's holder: only what the token grants."""

    user: str | None
    grants: dict[str, frozenset[str]]

    def can(self, name: str, action: str) -> bool:
        if action == CATALOG:
            return CATALOG in self.grants
        return action in self.grants.get(name, frozenset())


Access = PolicyAccess | TokenAccess


async def basic_user(settings: AuthSettings, header: str, client: str) -> str:
    """The user a ``Basic`` header proves; UNAUTHORIZED for wrong or malformed credentials,
    TOO_MANY_LOGINS (429, ``Retry-After``) while ``client`` has failed too often."""
    wait = settings.throttle.retry_after(client)
    if wait is not None:
        raise OCIError(ErrorCode.TOO_MANY_LOGINS, {"retry_after": wait}, {"Retry-After": str(wait)})
    try:
        user, sep, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, ValueError):
        user, sep, password = "", "", ""
    ok = bool(sep) and settings.htpasswd is not None
    if ok and settings.htpasswd is not None:
        ok = await run_in_threadpool(settings.htpasswd.verify, user, password)
    if not ok:
        settings.throttle.failed(client)
        raise OCIError(ErrorCode.UNAUTHORIZED, "invalid username or password")
    return user


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class Gate:
    def __init__(
        self,
        app: ASGIApp,
        auth: AuthSettings | None,
        read_only: bool,
        refusal: ErrorCode = ErrorCode.READ_ONLY,
    ) -> None:
        self.app = app
        self.auth = auth
        self.read_only = read_only
        self.refusal = refusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        need = scopes.need(scope["method"], scope["path"])
        try:
            if need and self.read_only and need.kind == "repository" and need.action != "pull":
                raise OCIError(self.refusal)
            if need and self.auth is not None:
                if need.kind == "repository":
                    names.repository(need.name)
                where = _Where(
                    Headers(scope=scope), scope.get("scheme", "http"), client_address(scope)
                )
                access = await self._authenticate(self.auth, where, need)
                scope[ACCESS_SCOPE_KEY] = access
                self._authorize(self.auth, access, need, where)
        except OCIError as error:
            await response(error)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _authenticate(self, auth: AuthSettings, where: _Where, need: scopes.Need) -> Access:
        header = where.headers.get("authorization", "")
        try:
            if header[:6].lower() == "basic ":
                return PolicyAccess(await basic_user(auth, header, where.client), auth.policy)
            if header[:7].lower() == "bearer " and auth.issuer is not None:
                try:
                    claims = auth.issuer.verify(header[7:].strip())
                except InvalidToken as exc:
                    raise OCIError(ErrorCode.UNAUTHORIZED, f"invalid token: {exc}") from None
                return TokenAccess(claims.user, claims.access)
            if header:
                raise OCIError(ErrorCode.UNAUTHORIZED, "unsupported authorization scheme")
        except OCIError as error:
            if error.code is ErrorCode.UNAUTHORIZED and need.kind != "ui":
                # the browser page asks for credentials itself: no challenge, no browser dialog
                error.headers["WWW-Authenticate"] = _challenge(auth, where, need, "invalid_token")
            raise
        return PolicyAccess(None, auth.policy)

    def _authorize(
        self, auth: AuthSettings, access: Access, need: scopes.Need, where: _Where
    ) -> None:
        if need.kind == "base":
            allowed = access.user is not None or isinstance(access, TokenAccess)
        elif need.kind == "catalog":
            allowed = access.can("", CATALOG)
        elif need.kind == "metrics":
            allowed = access.user is not None
        elif need.kind == "ui":
            allowed = True  # mdl.registry.webui answers only what ``access`` may pull
        elif need.kind == "repository":
            allowed = access.can(need.name, need.action)
        else:
            allowed = False  # a path the router's table does not parse: fail closed
        if allowed:
            return
        policy_allows = need.kind in ("base", "catalog", "metrics") or (
            need.kind == "repository" and need.action in auth.policy.allowed(access.user, need.name)
        )
        if access.user is None or (isinstance(access, TokenAccess) and policy_allows):
            error = "insufficient_scope" if isinstance(access, TokenAccess) else None
            challenge = {"WWW-Authenticate": _challenge(auth, where, need, error)}
            raise OCIError(ErrorCode.UNAUTHORIZED, need.scope or None, challenge)
        raise OCIError(ErrorCode.DENIED, need.scope or None)


@dataclass(frozen=True)
class _Where:
    """The request as the challenge needs it: its headers and the scheme it came in on."""

    headers: Headers
    scheme: str
    client: str
    """The caller's address, which failed logins are counted by."""


def _challenge(auth: AuthSettings, where: _Where, need: scopes.Need, error: str | None) -> str:
    if auth.issuer is None:
        return f'Basic realm="{BASIC_REALM}"'
    host = where.headers.get("host", "")
    if auth.realm is None and not is_host(host):
        raise OCIError(ErrorCode.BAD_REQUEST, "the Host header is not a valid host[:port]")
    realm = auth.realm or f"{where.scheme}://{host}/token"
    parts = [f'realm="{realm}"', f'service="{auth.issuer.service}"']
    if need.scope:
        parts.append(f'scope="{need.scope}"')
    if error:
        parts.append(f'error="{error}"')
    return "Bearer " + ",".join(parts)
