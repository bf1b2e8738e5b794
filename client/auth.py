"""httpx authentication driven by the registry's challenges: anonymous, basic, bearer tokens.

Requests go out without credentials until a 401 says which scheme the registry wants. A bearer
token is fetched from the challenge's realm (with basic credentials when there are some), cached
by challenger and scope and reused for every later request to the same repository; a 401 with a
cached token fetches a fresh one once.

A challenge is answered only with the credentials of the host that sent it: when a redirect led
elsewhere (a blob GET sent on to a storage host), that host's 401 is answered with its own
credentials (usually none), and the answer goes to it, not back to the registry. When the
registry was reached over HTTPS, no credentials travel over plain HTTP, to a challenger or to a
token realm.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Callable, Generator

import httpx

from mdl.client.body import SMALL_BYTES, read_capped
from mdl.client.credentials import Credentials
from mdl.spec.challenge import Challenge, parse_challenges
from mdl.spec.errors import TransportError, Unauthorized

CredentialLookup = Callable[[str], Credentials | None]
"""``host[:port]`` of the host that asks → its credentials."""

_REPOSITORY = re.compile(r"^/v2/(.+?)/(?:blobs|manifests|tags|referrers)/")


class RegistryAuth(httpx.Auth):
    def __init__(
        self, credentials: CredentialLookup, token_client: httpx.Client, *, secure: bool
    ) -> None:
        self._credentials = credentials
        self._token_client = token_client
        self._secure = secure  # the registry was reached over HTTPS
        self._lock = threading.Lock()
        self._headers: dict[tuple[str, str], str] = {}  # (origin, repository) -> Authorization
        self._tokens: dict[tuple[str, str, str], tuple[str, float]] = {}
        """(challenger's origin, realm, scope) -> (token, expiry)"""

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        cached = self._cached(request.url)
        if cached:
            request.headers["Authorization"] = cached
        response = yield request
        if response.status_code != 401:
            return
        challenger = response.request  # the last hop, after any redirects
        foreign = _origin(challenger.url) != _origin(request.url)
        if foreign and challenger.method not in ("GET", "HEAD"):
            return  # a body cannot be sent again: the 401 goes back
        refused = challenger.headers.get("Authorization")  # a redirect elsewhere sent none
        header = self._answer(challenger.url, response, refused)
        if header is None:
            return
        with self._lock:
            self._headers[_key(challenger.url)] = header
        retry = challenger if foreign else request
        retry.headers["Authorization"] = header
        yield retry

    def _cached(self, url: httpx.URL) -> str | None:
        with self._lock:
            return self._headers.get(_key(url))

    def _answer(self, url: httpx.URL, response: httpx.Response, stale: str | None) -> str | None:
        """The Authorization header that answers the 401 ``url`` sent, or None to give it back."""
        for challenge in parse_challenges(response.headers.get("WWW-Authenticate", "")):
            if challenge.scheme == "bearer" and "realm" in challenge.params:
                credentials = self._credentials_for(url, challenge.params["realm"])
                token = self._token(url, challenge, credentials, refresh=stale is not None)
                return "Bearer " + token
            if challenge.scheme == "basic" and stale is None:
                credentials = self._credentials_for(url, str(url))
                if credentials:
                    raw = f"{credentials.username}:{credentials.password}".encode()
                    return "Basic " + base64.b64encode(raw).decode()
        return None

    def _credentials_for(self, challenger: httpx.URL, destination: str) -> Credentials | None:
        """The challenger's own credentials, unless they would go over plain HTTP from a
        registry reached over HTTPS."""
        if self._secure and not (challenger.scheme == "https" and _is_https(destination)):
            return None
        return self._credentials(challenger.netloc.decode())

    def _token(
        self,
        challenger: httpx.URL,
        challenge: Challenge,
        credentials: Credentials | None,
        *,
        refresh: bool,
    ) -> str:
        realm = challenge.params["realm"]
        scope = challenge.params.get("scope", "")
        cache_key = (_origin(challenger), realm, scope)
        with self._lock:
            cached = self._tokens.get(cache_key)
        if cached and not refresh and cached[1] > time.monotonic():
            return cached[0]
        params = {k: v for k, v in (("service", challenge.params.get("service")),) if v}
        if scope:
            params["scope"] = scope
        auth = (credentials.username, credentials.password) if credentials else None
        try:
            with self._token_client.stream("GET", realm, params=params, auth=auth) as answer:
                if answer.status_code in (401, 403):
                    who = f"as {credentials.username}" if credentials else "anonymously"
                    if not credentials and self._secure and not _is_https(realm):
                        who += " (no credentials go over plain HTTP from an HTTPS registry)"
                    raise Unauthorized(
                        f"{realm}: token for {scope or 'the registry'} refused {who}",
                        status=answer.status_code,
                        code="UNAUTHORIZED",
                    )
                if answer.status_code != 200:
                    raise Unauthorized(f"{realm}: token endpoint answered {answer.status_code}")
                body = read_capped(answer, SMALL_BYTES, f"token from {realm}")
        except httpx.HTTPError as exc:
            raise TransportError(f"token request to {realm} failed: {exc}") from exc
        token, lifetime = _parse_token(body)
        if not token:
            raise Unauthorized(f"{realm}: token endpoint sent no token")
        ttl = float(lifetime) if isinstance(lifetime, int | float) else 60.0
        with self._lock:
            self._tokens[cache_key] = (token, time.monotonic() + max(ttl - 10, 1))
        return token


def _parse_token(body: bytes) -> tuple[str | None, object]:
    """(token, expires_in) from a token endpoint's JSON answer; (None, None) if it has none."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None, None
    if not isinstance(doc, dict):
        return None, None
    token = doc.get("token") or doc.get("access_token")
    return (token if isinstance(token, str) and token else None), doc.get("expires_in")


def _is_https(url: str) -> bool:
    try:
        return httpx.URL(url).scheme == "https"
    except httpx.InvalidURL:
        return False


def _origin(url: httpx.URL) -> str:
    return f"{url.scheme}://{url.netloc.decode()}"


def _key(url: httpx.URL) -> tuple[str, str]:
    match = _REPOSITORY.match(url.path)
    return _origin(url), match.group(1) if match else ""
