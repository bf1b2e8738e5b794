"""One registry host: its base URL, an httpx client with challenge-driven auth, retries, and the
translation of error answers into mdl's errors.

HTTPS, verified (against ``MDL_CA_BUNDLE`` when set), for every registry but loopback hosts and
those named by ``--insecure`` or ``MDL_INSECURE_REGISTRIES`` (comma-separated): those get HTTPS
without verification when they speak TLS, else plain HTTP.
Proxies come from the environment (``HTTPS_PROXY``, ``NO_PROXY``), as httpx reads them.
Answers are asked for uncompressed, and every body but a blob's is read capped (``body.py``),
redirects and challenges included.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from mdl.client import credentials
from mdl.client.auth import CredentialLookup, RegistryAuth
from mdl.client.body import ERROR_BYTES, SMALL_BYTES, cap, read_capped
from mdl.client.credentials import canonical_host
from mdl.spec.errors import NotFound, RemoteError, TransportError, Unauthorized

RETRIES = 6
_LOOPBACK = ("localhost", "127.0.0.1", "[::1]", "::1")
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def is_insecure(host: str, insecure: bool = False) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if insecure or name in _LOOPBACK or host in _LOOPBACK:
        return True
    listed = os.environ.get("MDL_INSECURE_REGISTRIES", "")
    return host in {h.strip() for h in listed.split(",") if h.strip()}


def stall_timeout() -> float:
    """Seconds without a byte before a transfer counts as stalled and is retried."""
    return float(os.environ.get("MDL_STALL_TIMEOUT", "30"))


class Connection:
    def __init__(
        self,
        host: str,
        *,
        insecure: bool = False,
        lookup: CredentialLookup | None = None,
        retries: int = RETRIES,
    ) -> None:
        """``retries``: attempts per request (a mirror gets few, so a dead one is left soon)."""
        self.host = canonical_host(host)
        self.retries = retries
        verify: Any = os.environ.get("MDL_CA_BUNDLE") or True
        scheme = "https"
        if is_insecure(self.host, insecure):
            scheme = _probe_scheme(self.host)
            verify = os.environ.get("MDL_CA_BUNDLE") or False
        self.base_url = f"{scheme}://{self.host}"
        timeout = httpx.Timeout(connect=15.0, read=stall_timeout(), write=120.0, pool=None)
        headers = {"User-Agent": "mdl", "Accept-Encoding": "identity"}
        self._token_client = httpx.Client(verify=verify, timeout=timeout, headers=headers)
        auth = RegistryAuth(
            lookup or credentials.lookup, self._token_client, secure=scheme == "https"
        )
        self.client = httpx.Client(
            auth=auth,
            verify=verify,
            timeout=timeout,
            follow_redirects=True,
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
            headers=headers,
            event_hooks={"response": [_cap_detours]},
        )

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.base_url + path

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send once; the answer's body is left unread (for ``read_capped``, or to stream)."""
        return self.client.send(
            self.client.build_request(method, self.url(path), **kwargs), stream=True
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        ok: tuple[int, ...] = (200,),
        what: str = "",
        limit: int = SMALL_BYTES,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send with retries on 5xx, 429 (honouring Retry-After) and dropped connections; an
        answer outside ``ok`` becomes an mdl error. The body is read, up to ``limit`` bytes."""
        what = what or f"{method} {path}"
        response = with_retries(lambda: self.send(method, path, **kwargs), what, self.retries)
        try:
            if response.status_code not in ok:
                raise error_for(response, what)
            read_capped(response, limit, what)
        finally:
            response.close()
        return response

    def close(self) -> None:
        self.client.close()
        self._token_client.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _cap_detours(response: httpx.Response) -> None:
    """httpx reads the body of a redirect or of a challenge it answers on its own: cap it too."""
    if response.is_redirect or response.status_code == 401:
        cap(response, ERROR_BYTES, f"{response.request.method} {response.url.path}")


def _probe_scheme(host: str) -> str:
    """For a registry allowed to be insecure, as docker does: HTTPS when it speaks TLS (its
    certificate unchecked unless MDL_CA_BUNDLE names one), else plain HTTP."""
    try:
        with httpx.Client(verify=False, timeout=5.0) as probe:
            probe.send(probe.build_request("GET", f"https://{host}/v2/"), stream=True).close()
    except httpx.HTTPError:
        return "http"
    return "https"


def with_retries(
    send: Callable[[], httpx.Response], what: str, attempts: int = RETRIES
) -> httpx.Response:
    for attempt in range(attempts):
        last = attempt == attempts - 1
        try:
            response = send()
        except httpx.TransportError as exc:
            if last:
                raise TransportError(f"{what}: {type(exc).__name__}: {exc}") from exc
            backoff(attempt)
            continue
        if response.status_code in _RETRY_STATUS and not last:
            response.close()
            backoff(attempt, response.headers.get("Retry-After"))
            continue
        return response
    raise AssertionError("unreachable")


def backoff(attempt: int, asked: str | None = None) -> None:
    """Exponential with jitter (0.25 s doubling, at most 8 s), or what Retry-After (``asked``)
    asks."""
    delay = retry_after(asked)
    if delay is None:
        delay = min(0.25 * 2**attempt, 8.0) * (0.5 + random.random() / 2)
    time.sleep(delay)


def retry_after(value: str | None) -> float | None:
    """The seconds a ``Retry-After`` header asks for (seconds or a date), at most 60; None
    when it is missing or unreadable."""
    if not value:
        return None
    try:
        return min(max(float(value), 0.0), 60.0)
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, min(moment.timestamp() - time.time(), 60.0))


def error_for(response: httpx.Response, what: str) -> RemoteError | NotFound:
    """An error answer as an mdl error, keeping the registry's OCI error code and message; at
    most ``ERROR_BYTES`` of its body are read."""
    code, message = None, response.reason_phrase
    try:
        doc = json.loads(read_capped(response, ERROR_BYTES, what))
    except RemoteError:
        message += f" (an error body over {ERROR_BYTES} bytes, not read)"
    except (ValueError, httpx.HTTPError):
        pass  # no JSON, or the connection failed mid-body: the status says enough
    else:
        errors = doc.get("errors") if isinstance(doc, dict) else None
        first = errors[0] if isinstance(errors, list) and errors else None
        if isinstance(first, dict):
            code = first.get("code") if isinstance(first.get("code"), str) else None
            sent = first.get("message")
            message = sent if isinstance(sent, str) and sent else message
    finally:
        response.close()
    status = response.status_code
    text = f"{what}: {status} {code + ': ' if code else ''}{message}"
    if status in (401, 403):
        return Unauthorized(text, status=status, code=code)
    if status == 404:
        return NotFound(text)
    asked = retry_after(response.headers.get("Retry-After"))
    return RemoteError(text, status=status, code=code, retry_after=asked)
