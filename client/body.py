"""Read a streamed response's body into one reused buffer.

httpx hands a body over as a new ``bytes`` object per receive, copied twice on the way through
h11's buffer; for multi-GB blobs those allocations fault in fresh pages and the copies cost more
CPU than the bytes themselves. For a plain ``Content-Length`` body this module lets httpx deliver
the first piece (which empties h11's buffer) and then receives the rest straight from the socket
with ``recv_into``. The connection is left mid-body, so httpcore closes it instead of reusing it
when the response closes. Anything else (chunked or compressed bodies, TLS inside a TLS proxy
tunnel) goes through httpx as usual.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator

import httpx

from mdl.spec.errors import TransportError


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
    try:
        return int(headers["content-length"])
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
