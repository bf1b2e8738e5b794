"""The one digest grammar: ``sha256:<64 hex>`` or ``sha512:<128 hex>``, matched whole."""

from __future__ import annotations

import pytest

from mdl.spec.digest import Digest, is_digest
from mdl.spec.errors import InvalidReference

SHA256 = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    "text",
    [SHA256 + "\n", SHA256 + "\r\n", "\n" + SHA256, SHA256 + " ", SHA256 + "0",
     "sha256:" + "A" * 64, "sha512:" + "a" * 64, "md5:" + "a" * 32, "sha256:", ""],
)  # fmt: skip
def test_anything_but_a_whole_digest_is_refused(text: str) -> None:
    assert not is_digest(text)
    with pytest.raises(InvalidReference):
        Digest.parse(text)


def test_both_algorithms_parse() -> None:
    assert Digest.parse(SHA256) == Digest("sha256", "a" * 64)
    assert str(Digest.parse("sha512:" + "b" * 128)) == "sha512:" + "b" * 128
