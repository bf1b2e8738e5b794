"""The pull-through cache's client of its upstream registry: async httpx, challenge-driven auth.

Requests go out without credentials until a 401 names a scheme: ``Basic`` is answered with
``--proxy-user``'s credentials; ``Bearer`` with a token from the challenge's realm (fetched with
those credentials when there are some, anonymously otherwise, as Docker Hub's flow wants), cached
by realm, service and scope until shortly before it expires. A 401 from another host (a blob GET
redirected to storage) is never answered, and credentials never go over plain HTTP to a realm
when the upstream speaks HTTPS. Nothing here logs a header.

Upstream answers become the registry's own errors: 404 is MANIFEST_UNKNOWN, BLOB_UNKNOWN or
NAME_UNKNOWN; 401/403 UPSTREAM_DENIED; 429 UPSTREAM_RATE_LIMITED (with its ``Retry-After``);
any other status UPSTREAM_FAILED (502); no answer at all UPSTREAM_UNAVAILABLE (503). ``DOWN``
are those that mean "the upstream is not serving now".

This is not ``mdl.client``: the registry may not import it (``client`` and ``registry`` are
sibling layers), and the client is synchronous, while the cache must not hold a thread for
every upstream request. The challenge grammar is shared, in ``mdl.spec.challenge``.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from mdl.registry.errors import ErrorCode, OCIError
from mdl.spec.challenge import Challenge, parse_challenges
from mdl.spec.routes import BLOB, MANIFEST, TAGS

DEFAULT_TTL = 168 * 3600.0
DOWN = frozenset(
    {ErrorCode.UPSTREAM_UNAVAILABLE, ErrorCode.UPSTREAM_FAILED, ErrorCode.UPSTREAM_RATE_LIMITED}
)
_UNKNOWN = {
    "manifest": ErrorCode.MANIFEST_UNKNOWN,
    "blob": ErrorCode.BLOB_UNKNOWN,
    "tags": ErrorCode.NAME_UNKNOWN,
}
_REPOSITORY = re.compile(r"^/v2/(.+?)/(?:blobs|manifests|tags)/")
_TOKEN_BYTES = 64 * 1024
_NEXT = re.compile(r'\s*<(?:https?://[^/>]+)?(/v2/[^>]*)>\s*;\s*rel="?next"?')
TAG_PAGES = 100


@dataclass(frozen=True)
class UpstreamSettings:
    url: str
    """``http(s)://host[:port]``, no path."""
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ttl: float = DEFAULT_TTL
    """Seconds a cached tag is served before it is revalidated upstream."""


def proxy_settings(
    url: str, user: str | None, password_file: str | None, ttl: float
) -> UpstreamSettings:
    """The upstream as the flags give it; ValueError naming the flag that is wrong."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ValueError(f"--proxy {url!r}: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"--proxy {url!r}: want http(s)://HOST[:PORT]")
    if parsed.path not in ("", "/") or parsed.query or parsed.fragment or parsed.userinfo:
        raise ValueError(
            f"--proxy {url!r}: want http(s)://HOST[:PORT], no path, query or credentials "
            "(give those with --proxy-user and --proxy-password-file)"
        )
    if bool(user) != bool(password_file):
        raise ValueError("--proxy-user and --proxy-password-file go together")
    password = None
    if password_file:
        try:
            password = Path(password_file).read_text().rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"--proxy-password-file {password_file}: {exc}") from None
    if not ttl > 0:
        raise ValueError("--proxy-ttl must be longer than 0")
    origin = f"{parsed.scheme}://{parsed.netloc.decode()}"
    return UpstreamSettings(origin, user, password, ttl)


class UpstreamAuth(httpx.Auth):
    def __init__(self, settings: UpstreamSettings, tokens: httpx.AsyncClient) -> None:
        self._origin = _origin(httpx.URL(settings.url))
        self._settings = settings
        self._tokens = tokens
        self._headers: dict[str, str] = {}
        """repository -> the Authorization header that last worked for it"""
        self._cache: dict[tuple[str, str, str], tuple[str, float]] = {}
        """(realm, service, scope) -> (token, monotonic expiry)"""

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        repository = _repository(request.url)
        cached = self._headers.get(repository)
        if cached:
            request.headers["Authorization"] = cached
        response = yield request
        if response.status_code != 401 or _origin(response.url) != self._origin:
            return
        header = await self._answer(response.headers.get("WWW-Authenticate", ""), cached)
        if header is None:
            return
        self._headers[repository] = header
        request.headers["Authorization"] = header
        yield request

    async def _answer(self, header: str, stale: str | None) -> str | None:
        for challenge in parse_challenges(header):
            if challenge.scheme == "bearer" and challenge.params.get("realm"):
                return "Bearer " + await self._token(challenge, refresh=stale is not None)
            if challenge.scheme == "basic" and stale is None and self._settings.username:
                raw = f"{self._settings.username}:{self._settings.password or ''}".encode()
                return "Basic " + base64.b64encode(raw).decode()
        return None

    async def _token(self, challenge: Challenge, *, refresh: bool) -> str:
        realm = challenge.params["realm"]
        service, scope = challenge.params.get("service", ""), challenge.params.get("scope", "")
        key = (realm, service, scope)
        cached = self._cache.get(key)
        if cached and not refresh and cached[1] > time.monotonic():
            return cached[0]
        params = {name: value for name, value in (("service", service), ("scope", scope)) if value}
        auth = None
        if self._settings.username and (self._origin.startswith("http:") or _https(realm)):
            auth = (self._settings.username, self._settings.password or "")
        try:
            async with self._tokens.stream("GET", realm, params=params, auth=auth) as answer:
                body = await _read(answer, _TOKEN_BYTES)
        except httpx.HTTPError as exc:
            raise OCIError(ErrorCode.UPSTREAM_UNAVAILABLE, {"token": type(exc).__name__}) from None
        if answer.status_code != 200:
            raise OCIError(ErrorCode.UPSTREAM_DENIED, {"token_status": answer.status_code})
        token, lifetime = _parse_token(body)
        if token is None:
            raise OCIError(ErrorCode.UPSTREAM_FAILED, "the token endpoint sent no token")
        self._cache[key] = (token, time.monotonic() + max(lifetime - 10, 1))
        return token


class Upstream:
    """One upstream registry, spoken to asynchronously; every method raises OCIError."""

    def __init__(self, settings: UpstreamSettings) -> None:
        self.settings = settings
        timeout = httpx.Timeout(connect=5.0, read=30.0, write=30.0, pool=None)
        headers = {"User-Agent": "mdl-registry-proxy", "Accept-Encoding": "identity"}
        self._tokens = httpx.AsyncClient(timeout=timeout, headers=headers)
        self.client = httpx.AsyncClient(
            base_url=settings.url.rstrip("/"),
            auth=UpstreamAuth(settings, self._tokens),
            timeout=timeout,
            headers=headers,
            follow_redirects=True,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
        )

    @asynccontextmanager
    async def open(
        self,
        method: str,
        path: str,
        kind: str,
        detail: object,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """The upstream's 200 answer to ``method path``, its body unread; anything else (or
        a connection that fails, now or while the body is read) as an OCIError about ``kind``."""
        request = self.client.build_request(method, path, headers=headers, params=params)
        try:
            response = await self.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise _unreachable(exc) from None
        try:
            if response.status_code != 200:
                raise _error(response, kind, detail)
            yield response
        except httpx.HTTPError as exc:
            raise _unreachable(exc) from None
        finally:
            await response.aclose()

    async def manifest_digest(self, name: str, reference: str, accept: str) -> str | None:
        """The ``Docker-Content-Digest`` a HEAD of the manifest answers with (None if none)."""
        path, what = MANIFEST.path(name=name, reference=reference), {"reference": reference}
        async with self.open("HEAD", path, "manifest", what, {"Accept": accept}) as r:
            digest: str | None = r.headers.get("Docker-Content-Digest")
            return digest

    async def manifest(
        self, name: str, reference: str, accept: str, limit: int
    ) -> tuple[bytes, str | None, str | None]:
        """(bytes, Content-Type, Docker-Content-Digest) of the manifest; UPSTREAM_FAILED past
        ``limit`` bytes."""
        path, what = MANIFEST.path(name=name, reference=reference), {"reference": reference}
        async with self.open("GET", path, "manifest", what, {"Accept": accept}) as r:
            data = await _read(r, limit)
            return data, r.headers.get("Content-Type"), r.headers.get("Docker-Content-Digest")

    async def blob_size(self, name: str, digest: str) -> int | None:
        path = BLOB.path(name=name, digest=digest)
        async with self.open("HEAD", path, "blob", {"digest": digest}) as r:
            return content_length(r)

    def blob(self, name: str, digest: str) -> AbstractAsyncContextManager[httpx.Response]:
        return self.open("GET", BLOB.path(name=name, digest=digest), "blob", {"digest": digest})

    async def tags(self, name: str) -> list[str]:
        """Every tag of ``name``, following the upstream's ``Link`` pages (at most
        ``TAG_PAGES``)."""
        path: str | None = TAGS.path(name=name)
        found: list[str] = []
        for _ in range(TAG_PAGES):
            if path is None:
                break
            async with self.open("GET", path, "tags", {"name": name}) as r:
                body = await _read(r, 16 * 1024 * 1024)
                path = _next_page(r.headers.get("Link", ""))
            try:
                tags = json.loads(body).get("tags") or []
            except (ValueError, AttributeError):
                raise OCIError(ErrorCode.UPSTREAM_FAILED, "a tag list that is not JSON") from None
            found += [tag for tag in tags if isinstance(tag, str)]
        return found

    async def close(self) -> None:
        await self.client.aclose()
        await self._tokens.aclose()


def content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("Content-Length", "")
    return int(value) if value.isascii() and value.isdigit() and len(value) < 20 else None


async def _read(response: httpx.Response, limit: int) -> bytes:
    body = bytearray()
    async for piece in response.aiter_raw():
        body += piece
        if len(body) > limit:
            raise OCIError(ErrorCode.UPSTREAM_FAILED, f"an answer over {limit} bytes")
    return bytes(body)


def _next_page(link: str) -> str | None:
    """The path of a ``Link: <…>; rel="next"`` header on this upstream (None for none)."""
    match = _NEXT.match(link)
    return match.group(1) if match else None


def _error(response: httpx.Response, kind: str, detail: object) -> OCIError:
    status = response.status_code
    if status == 429:
        wait = response.headers.get("Retry-After", "")
        headers = {"Retry-After": wait} if wait.isascii() and wait.isdigit() else {}
        return OCIError(ErrorCode.UPSTREAM_RATE_LIMITED, {"upstream_status": 429}, headers)
    if status == 404:
        return OCIError(_UNKNOWN[kind], detail)
    if status in (401, 403):
        return OCIError(ErrorCode.UPSTREAM_DENIED, {"upstream_status": status})
    return OCIError(ErrorCode.UPSTREAM_FAILED, {"upstream_status": status})


def _unreachable(exc: httpx.HTTPError) -> OCIError:
    return OCIError(ErrorCode.UPSTREAM_UNAVAILABLE, {"error": type(exc).__name__})


def _parse_token(body: bytes) -> tuple[str | None, float]:
    try:
        doc = json.loads(body)
    except ValueError:
        return None, 0.0
    if not isinstance(doc, dict):
        return None, 0.0
    token = doc.get("token") or doc.get("access_token")
    lifetime = doc.get("expires_in")
    seconds = float(lifetime) if isinstance(lifetime, int | float) else 60.0
    return (token if isinstance(token, str) and token else None), seconds


def _https(url: str) -> bool:
    return url.lower().startswith("https://")


def _origin(url: httpx.URL) -> str:
    return f"{url.scheme}://{url.netloc.decode()}"


def _repository(url: httpx.URL) -> str:
    match = _REPOSITORY.match(url.path)
    return match.group(1) if match else ""
