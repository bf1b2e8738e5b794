"""Running sha256/sha512 hashes whose state can be saved and carried on by another process.

hashlib cannot export a hash's state, and an upload's chunks may reach a different replica each,
so the state is taken from OpenSSL's own low-level contexts (``SHA256_CTX``, ``SHA512_CTX``:
plain structs, called through ctypes, which releases the GIL as hashlib does). The bytes are
only ever restored by this code into the same library; a self-test at import (hash, save,
restore, finish, compare with hashlib) turns the feature off when the library is missing or
its layout differs, and uploads then fall back to re-reading the data at commit.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
from typing import Any

_SIZES = {"sha256": (112, 32, "SHA256"), "sha512": (216, 64, "SHA512")}
"""algorithm -> (sizeof the context, digest bytes, OpenSSL's function prefix)"""
_ROOM = 512
"""Bytes allocated per context: more than either struct, so a layout change cannot overrun."""


def _load() -> Any:
    name = ctypes.util.find_library("crypto")
    if name is None:
        return None
    try:
        library = ctypes.CDLL(name)
        for _, _, prefix in _SIZES.values():
            for suffix in ("_Init", "_Update", "_Final"):
                getattr(library, prefix + suffix).restype = ctypes.c_int
            getattr(library, prefix + "_Update").argtypes = [
                ctypes.c_void_p,
                ctypes.c_void_p,
                ctypes.c_size_t,
            ]
    except (OSError, AttributeError):
        return None
    return library


_LIB = _load()


class Resumable:
    """A running hash with ``update``/``hexdigest``/``name`` like hashlib's, and ``state``."""

    def __init__(self, name: str, state: bytes | None = None) -> None:
        size, self._digest_size, prefix = _SIZES[name]
        self.name = name
        self._size = size
        self._update = getattr(_LIB, prefix + "_Update")
        self._final = getattr(_LIB, prefix + "_Final")
        self._ctx = ctypes.create_string_buffer(_ROOM)
        if state is None:
            getattr(_LIB, prefix + "_Init")(self._ctx)
        elif len(state) == size:
            ctypes.memmove(self._ctx, state, size)
        else:
            raise ValueError(f"{name} state must be {size} bytes, not {len(state)}")

    def update(self, data: bytes | bytearray | memoryview) -> None:
        if isinstance(data, bytes):
            self._update(self._ctx, data, len(data))
            return
        view = memoryview(data).cast("B")
        if not view.readonly:
            buffer = (ctypes.c_char * len(view)).from_buffer(view)
            self._update(self._ctx, buffer, len(view))
        else:
            whole = bytes(view)
            self._update(self._ctx, whole, len(whole))

    def state(self) -> bytes:
        return self._ctx.raw[: self._size]

    def hexdigest(self) -> str:
        copy = ctypes.create_string_buffer(self._ctx.raw, _ROOM)
        out = ctypes.create_string_buffer(self._digest_size)
        self._final(out, copy)
        return out.raw.hex()


def _works() -> bool:
    if _LIB is None:
        return False
    sample = bytes(range(256)) * 3
    try:
        for name in _SIZES:
            first = Resumable(name)
            first.update(sample[:300])
            second = Resumable(name, first.state())
            second.update(bytearray(sample[300:]))
            if second.hexdigest() != hashlib.new(name, sample).hexdigest():
                return False
    except (OSError, ValueError, AttributeError):
        return False
    return True


AVAILABLE = _works()


def new(name: str) -> Any:
    """A ``Resumable`` hash when this library allows it, else hashlib's (not resumable)."""
    return Resumable(name) if AVAILABLE and name in _SIZES else hashlib.new(name)


def restore(name: str, state: bytes) -> Resumable | None:
    """The hash ``state`` saved; None when it cannot be (another layout, a bad length)."""
    if not AVAILABLE or name not in _SIZES:
        return None
    try:
        return Resumable(name, state)
    except ValueError:
        return None
