"""httpx authentication driven by the registry's challenges: anonymous, basic, bearer tokens.

Requests go out without credentials until a 401 says which scheme the registry wants. A bearer
token is fetched from the challenge's realm (with basic credentials when there are some), cached
by scope and reused for every later request to the same repository; a 401 with a cached token
fetches a fresh one once.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from collections.abc import Callable, Generator

import httpx

from mdl.client.challenge import Challenge, parse_challenges
from mdl.client.credentials import Credentials
from mdl.spec.errors import TransportError, Unauthorized

CredentialLookup = Callable[[str], Credentials | None]

_REPOSITORY = re.compile(r"^/v2/(.+?)/(?:blobs|manifests|tags|referrers)/")


class RegistryAuth(httpx.Auth):
    def __init__(self, credentials: CredentialLookup, token_client: httpx.Client) -> None:
        self._credentials = credentials
        self._token_client = token_client
        self._lock = threading.Lock()
        self._headers: dict[tuple[str, str], str] = {}  # (host, repository) -> Authorization
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}  # (realm, scope) -> token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        key = _key(request)
        with self._lock:
            cached = self._headers.get(key)
        if cached:
            request.headers["Authorization"] = cached
        response = yield request
        if response.status_code != 401:
            return
        header = self._answer(request, response, stale=cached)
        if header is None:
            return
        with self._lock:
            self._headers[key] = header
        request.headers["Authorization"] = header
        yield request

    def _answer(
        self, request: httpx.Request, response: httpx.Response, stale: str | None
    ) -> str | None:
        """The Authorization header that answers this 401, or None to give the 401 back."""
        host = request.url.netloc.decode()
        challenges = parse_challenges(response.headers.get("WWW-Authenticate", ""))
        credentials = self._credentials(host)
        for challenge in challenges:
            if challenge.scheme == "bearer" and "realm" in challenge.params:
                return "Bearer " + self._token(challenge, credentials, refresh=stale is not None)
            if challenge.scheme == "basic" and credentials and stale is None:
                raw = f"{credentials.username}:{credentials.password}".encode()
                return "Basic " + base64.b64encode(raw).decode()
        return None

    def _token(
        self, challenge: Challenge, credentials: Credentials | None, *, refresh: bool
    ) -> str:
        realm = challenge.params["realm"]
        scope = challenge.params.get("scope", "")
        cache_key = (realm, scope)
        with self._lock:
            cached = self._tokens.get(cache_key)
        if cached and not refresh and cached[1] > time.monotonic():
            return cached[0]
        params = {k: v for k, v in (("service", challenge.params.get("service")),) if v}
        if scope:
            params["scope"] = scope
        auth = (credentials.username, credentials.password) if credentials else None
        try:
            answer = self._token_client.get(realm, params=params, auth=auth)
        except httpx.HTTPError as exc:
            raise TransportError(f"token request to {realm} failed: {exc}") from exc
        if answer.status_code in (401, 403):
            who = f"as {credentials.username}" if credentials else "anonymously"
            raise Unauthorized(
                f"{realm}: token for {scope or 'the registry'} refused {who}",
                status=answer.status_code,
                code="UNAUTHORIZED",
            )
        if answer.status_code != 200:
            raise Unauthorized(f"{realm}: token endpoint answered {answer.status_code}")
        doc = answer.json()
        token = doc.get("token") or doc.get("access_token")
        if not isinstance(token, str) or not token:
            raise Unauthorized(f"{realm}: token endpoint sent no token")
        lifetime = doc.get("expires_in")
        ttl = float(lifetime) if isinstance(lifetime, int | float) else 60.0
        with self._lock:
            self._tokens[cache_key] = (token, time.monotonic() + max(ttl - 10, 1))
        return token


def _key(request: httpx.Request) -> tuple[str, str]:
    match = _REPOSITORY.match(request.url.path)
    return request.url.netloc.decode(), match.group(1) if match else ""
