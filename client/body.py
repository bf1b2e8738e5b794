"""Read response bodies: a blob's into one reused buffer, anything else whole but capped.

Every body that is not a blob (manifests, tokens, error answers, redirects, challenges) is read
through ``cap``: an answer over its limit is an error, and is never read whole.

For blobs, httpx hands a body over as a new ``bytes`` object per receive, copied twice on the
way through h11's buffer; for multi-GB blobs those allocations fault in fresh pages and the
copies cost more CPU than the bytes themselves. For a plain ``Content-Length`` body this module
lets httpx deliver the first piece (which empties h11's buffer) and then receives the rest
straight from the socket with ``recv_into``. The connection is left mid-body, so httpcore closes
it instead of reusing it when the response closes. Anything else (chunked or compressed bodies,
TLS inside a TLS proxy tunnel) goes through httpx as usual.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator

import httpx

from mdl.spec.errors import RemoteError, TransportError

MANIFEST_BYTES = 4 * 1024 * 1024
"""The most a manifest, an index or a config may hold (distribution and containerd cap manifests
at 4 MiB too)."""
SMALL_BYTES = 64 * 1024
"""The most a token answer, or an answer that should carry no content, may hold."""
ERROR_BYTES = 8 * 1024
"""The most of an error answer's body that is read for its message."""


def read_capped(response: httpx.Response, limit: int, what: str) -> bytes:
    """The body of an answer (left unread until now), or RemoteError past ``limit`` bytes."""
    cap(response, limit, what)
    return response.read()


def cap(response: httpx.Response, limit: int, what: str) -> None:
    """Make any read of the answer's body (httpx's own, of a redirect or a challenge, too) fail
    past ``limit`` bytes; refuse at once one that says it is longer, or that is compressed: mdl
    asks for none (``Accept-Encoding: identity``), and a few KiB of gzip or zstd can decode to
    gigabytes."""
    if response.request.method == "HEAD":
        return  # no body, whatever Content-Length says
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    declared = _declared_length(response)
    problem = None
    if encoding not in ("", "identity"):
        problem = f"a {encoding}-encoded answer, though mdl asks for none"
    elif declared is not None and declared > limit:
        problem = f"an answer of {declared} bytes, over the limit of {limit}"
    if problem:
        response.close()
        raise RemoteError(f"{what}: {response.status_code} {problem}", status=response.status_code)
    if isinstance(response.stream, httpx.SyncByteStream):
        response.stream = _Capped(response.stream, limit, what, response.status_code)


class _Capped(httpx.SyncByteStream):
    """A response stream that fails once more than ``limit`` bytes have come through."""

    def __init__(self, stream: httpx.SyncByteStream, limit: int, what: str, status: int) -> None:
        self._stream, self._limit, self._what, self._status = stream, limit, what, status

    def __iter__(self) -> Iterator[bytes]:
        received = 0
        for chunk in self._stream:
            received += len(chunk)
            if received > self._limit:
                raise RemoteError(
                    f"{self._what}: {self._status} answer over the limit of {self._limit} bytes",
                    status=self._status,
                )
            yield chunk

    def close(self) -> None:
        self._stream.close()


def body_pieces(response: httpx.Response, buffer: memoryview) -> Iterator[memoryview]:
    """Yield the body in pieces; each piece is only valid until the next one is asked for."""
    sock = _raw_socket(response)
    length = _plain_length(response)
    if sock is None or length is None:
        for chunk in response.iter_bytes():  # decodes a Content-Encoding, if any
            yield memoryview(chunk)
        return
    # Keep httpx's iterator alive: dropping it would close the connection at once.
    through_httpx = response.iter_raw()
    received = 0
    if length:
        first = next(through_httpx, b"")
        received = len(first)
        yield memoryview(first)
    while received < length:
        try:
            count = sock.recv_into(buffer, min(len(buffer), length - received))
        except OSError as exc:  # timeouts (stalls) and resets alike
            raise TransportError(f"receiving a body: {type(exc).__name__}: {exc}") from exc
        if not count:
            raise TransportError(f"connection closed after {received} of {length} body bytes")
        received += count
        yield buffer[:count]


def _plain_length(response: httpx.Response) -> int | None:
    headers = response.headers
    if "content-encoding" in headers or "transfer-encoding" in headers:
        return None
    return _declared_length(response)


def _declared_length(response: httpx.Response) -> int | None:
    try:
        return int(response.headers["content-length"])
    except (KeyError, ValueError):
        return None


def _raw_socket(response: httpx.Response) -> socket.socket | None:
    """The socket the body arrives on, when reading it directly yields the body's bytes."""
    stream = response.extensions.get("network_stream")
    if stream is None or response.http_version != "HTTP/1.1":
        return None
    sock = stream.get_extra_info("socket")
    if not isinstance(sock, socket.socket):
        return None
    tls = stream.get_extra_info("ssl_object")
    if isinstance(tls, ssl.SSLObject):
        return None  # TLS inside a proxy's TLS tunnel: the socket carries the outer layer
    if (response.url.scheme == "https") != isinstance(sock, ssl.SSLSocket):
        return None
    return sock
