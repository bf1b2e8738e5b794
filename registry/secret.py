"""The registry's secret (``--secret-file``): the HMAC key behind the upload state it saves in
storage, so every replica given the same file trusts what another wrote, and nothing else.

A state whose signature does not verify (another secret, or bytes changed in the bucket) is
never an error: the upload just loses its saved hash, and its commit re-reads the data.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

MIN_BYTES = 16


def load_or_create(path: Path) -> bytes:
    """The secret in ``path`` (its bytes, surrounding whitespace dropped), made on first use
    (32 random bytes, hex, mode 0600). ValueError when it is shorter than ``MIN_BYTES``."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first: read theirs
        else:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(32) + "\n")
    secret = path.read_bytes().strip()
    if len(secret) < MIN_BYTES:
        raise ValueError(f"the secret must hold at least {MIN_BYTES} bytes, not {len(secret)}")
    return secret


def sign(secret: bytes, *fields: str) -> str:
    return hmac.new(secret, "\n".join(fields).encode(), hashlib.sha256).hexdigest()


def verify(secret: bytes, signature: object, *fields: str) -> bool:
    return isinstance(signature, str) and hmac.compare_digest(signature, sign(secret, *fields))
