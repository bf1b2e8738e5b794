"""Content digests (``algorithm:hex``) as a validated value, and the hashers behind them."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from mdl.spec.errors import InvalidReference

HEX_LENGTHS = {"sha256": 64, "sha512": 128}
DIGEST_PATTERN = r"(sha256|sha512):([a-f0-9]+)"
"""The one digest grammar (unanchored: match it whole, with ``fullmatch``)."""
_DIGEST = re.compile(DIGEST_PATTERN)


@dataclass(frozen=True, order=True)
class Digest:
    algorithm: str
    hex: str

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse ``sha256:<64 hex>`` or ``sha512:<128 hex>``; anything else is InvalidReference."""
        match = _DIGEST.fullmatch(text)
        if not match or len(match.group(2)) != HEX_LENGTHS[match.group(1)]:
            raise InvalidReference(f"invalid digest {text!r}: want sha256:<64 lower-case hex>")
        return cls(match.group(1), match.group(2))

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @property
    def short(self) -> str:
        """The first 12 hex digits, as docker prints image ids."""
        return self.hex[:12]


def is_digest(text: str) -> bool:
    try:
        Digest.parse(text)
    except InvalidReference:
        return False
    return True
