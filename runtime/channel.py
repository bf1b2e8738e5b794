"""The local channel between the server and a worker: framed messages over a Unix socket pair.

A frame is a 4-byte big-endian length and a payload whose first byte says what it is: ``T`` a
generated piece of text (then the request's id in 4 bytes and the text in UTF-8: the hot path,
no JSON), ``J`` a JSON object. Requests and control messages are JSON objects with an ``op``;
replies carry an ``ev``. Several requests run at once in one worker, so every request, cancel
and reply carries the request's ``id`` (the load and its reply use id 0).

``WorkerChannel`` is the worker's blocking end (one thread reads it while another writes);
``ServerChannel`` the server's asyncio end.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from typing import Any

_HEADER = struct.Struct(">I")
_ID = struct.Struct(">I")
_TOKEN, _JSON = b"T", b"J"
TokenFrame = tuple[int, str]
"""A request's id and a piece of its text."""
Frame = TokenFrame | dict[str, Any]


def encode_json(message: dict[str, Any]) -> bytes:
    payload = _JSON + json.dumps(message, separators=(",", ":")).encode()
    return _HEADER.pack(len(payload)) + payload


def encode_token(request_id: int, text: str) -> bytes:
    payload = _TOKEN + _ID.pack(request_id) + text.encode()
    return _HEADER.pack(len(payload)) + payload


def decode(payload: bytes) -> Frame:
    kind, body = payload[:1], payload[1:]
    if kind == _TOKEN and len(body) >= _ID.size:
        return _ID.unpack_from(body)[0], body[_ID.size :].decode()
    if kind == _JSON:
        message = json.loads(body)
        if isinstance(message, dict):
            return message
    raise ValueError(f"bad channel frame {payload[:16]!r}")


class WorkerChannel:
    """Blocking; ``recv`` returns None when the server has gone. ``post`` and ``post_token``
    queue frames that ``flush`` sends together: the step loop sends the tokens of all its
    streams in one write per step, so the server wakes once for them, not once per stream."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.outbox = bytearray()
        self.closed = False

    def send(self, message: dict[str, Any]) -> None:
        self.sock.sendall(encode_json(message))

    def post(self, message: dict[str, Any]) -> None:
        self.outbox += encode_json(message)

    def post_token(self, request_id: int, text: str) -> None:
        self.outbox += encode_token(request_id, text)

    def flush(self) -> None:
        if self.outbox:
            self.sock.sendall(self.outbox)
            self.outbox.clear()

    def recv(self) -> Frame | None:
        while (frame := self._take()) is None:
            if not self._fill():
                return None
        return frame

    def _take(self) -> Frame | None:
        if len(self.buffer) < _HEADER.size:
            return None
        (size,) = _HEADER.unpack_from(self.buffer)
        end = _HEADER.size + size
        if len(self.buffer) < end:
            return None
        payload = bytes(self.buffer[_HEADER.size : end])
        del self.buffer[:end]
        return decode(payload)

    def _fill(self) -> bool:
        """Wait for what the socket has; False once it is closed."""
        if self.closed:
            return False
        try:
            data = self.sock.recv(1 << 16)
        except OSError:
            data = b""
        if not data:
            self.closed = True
            return False
        self.buffer += data
        return True


class ServerChannel:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, sock: socket.socket) -> ServerChannel:
        reader, writer = await asyncio.open_unix_connection(sock=sock)
        return cls(reader, writer)

    def send(self, message: dict[str, Any]) -> None:
        """Queue a message without waiting (safe in cleanup code that must not await)."""
        if not self.writer.is_closing():
            self.writer.write(encode_json(message))

    async def recv(self) -> Frame | None:
        """The next frame, or None once the worker's end is closed."""
        try:
            header = await self.reader.readexactly(_HEADER.size)
            (size,) = _HEADER.unpack(header)
            return decode(await self.reader.readexactly(size))
        except (asyncio.IncompleteReadError, ConnectionError):
            return None

    def close(self) -> None:
        self.writer.close()
