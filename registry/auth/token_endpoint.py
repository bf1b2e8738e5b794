"""``GET /token``: docker's token flow. Basic credentials (optional: none means anonymous) buy a
short-lived token granting the requested scopes the policy allows, and nothing more."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mdl.registry import names
from mdl.registry.auth.gate import CATALOG, AuthSettings, basic_user, client_address
from mdl.registry.auth.scopes import RequestedScope
from mdl.registry.errors import ErrorCode, OCIError


async def token_endpoint(request: Request) -> Response:
    settings: AuthSettings = request.app.state.auth
    issuer = settings.issuer
    if issuer is None:
        raise OCIError(ErrorCode.NOT_FOUND)
    header = request.headers.get("authorization", "")
    user = None
    if header[:6].lower() == "basic ":
        user = await basic_user(settings, header, client_address(request.scope))
    elif header:
        raise OCIError(ErrorCode.UNAUTHORIZED, "the token endpoint takes basic credentials")
    grants: dict[str, frozenset[str]] = {}
    for text in (s for param in request.query_params.getlist("scope") for s in param.split()):
        scope = RequestedScope.parse(text)
        if scope is None:
            continue
        if scope.kind == "registry" and scope.name == "catalog" and user is not None:
            grants[CATALOG] = frozenset({"*"})
        elif scope.kind == "repository" and names.is_repository(scope.name):
            granted = scope.actions & settings.policy.allowed(user, scope.name)
            if granted:
                grants[scope.name] = grants.get(scope.name, frozenset()) | granted
    token = issuer.issue(user, grants)
    return JSONResponse(
        {
            "token": token,
            "access_token": token,
            "expires_in": issuer.ttl,
            "issued_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    )
