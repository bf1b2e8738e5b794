"""The pure rules behind variant choice: budgets, quality order, and the index mdl writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from mdl.spec import mediatypes as mt
from mdl.spec.descriptor import Descriptor
from mdl.spec.manifest import encode
from mdl.spec.variants import (
    Budget,
    NoVariantFits,
    Variant,
    VariantError,
    choose,
    parse_size,
    variant_index,
    variants_of,
)
from mdl.store.variants import memory_budget


def _variant(quantization: str, memory: int, file_size: int = 1000) -> Variant:
    desc = Descriptor.for_bytes(mt.OCI_MANIFEST, quantization.encode())
    return Variant(desc, quantization, file_size, "1.5M", 512, memory, 256)


@pytest.mark.parametrize(
    ("text", "size"),
    [("123", 123), ("2GB", 2 * 10**9), ("512MiB", 512 * 2**20), ("1.5 gib", 3 * 2**29),
     ("7b", 7), ("3kB", 3000), ("1TiB", 2**40)],
)  # fmt: skip
def test_memory_limits_read_in_bytes_or_units(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "2G", "lots", "-1GB", "1e9", "1,5GB"])
def test_an_unclear_memory_limit_is_refused(text: str) -> None:
    with pytest.raises(VariantError, match="want bytes, or a number with B, KB"):
        parse_size(text)


def test_the_budget_is_the_stated_limit_else_available_memory_plus_what_mdl_holds(
    tmp_path: Path,
) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 8000 kB\nMemAvailable:    1000 kB\n")
    assert memory_budget(5, {}, meminfo) == Budget(1024 * 1000 + 5, "available memory")
    stated = memory_budget(5, {"MDL_MEMORY_LIMIT": "3MB"}, meminfo)
    assert stated == Budget(3 * 10**6, "MDL_MEMORY_LIMIT")
    assert memory_budget(0, {}, tmp_path / "absent") is None


def test_the_best_variant_that_fits_is_chosen() -> None:
    variants = [_variant("Q4_0", 40), _variant("Q8_0", 80), _variant("Q4_K_M", 45),
                _variant("F16", 160), _variant("IQ9_X", 10)]  # fmt: skip
    picks = {
        b: choose(variants, Budget(b, "t"), None, "m").quantization for b in (40, 45, 79, 80, 500)
    }
    assert picks == {40: "Q4_0", 45: "Q4_K_M", 79: "Q4_K_M", 80: "Q8_0", 500: "F16"}
    assert choose(variants, None, None, "m").quantization == "F16"
    assert choose(variants, Budget(12, "t"), None, "m").quantization == "IQ9_X"
    assert choose(variants, Budget(1, "t"), "q8_0", "m").quantization == "Q8_0"
    with pytest.raises(
        NoVariantFits, match=r"m: no variant fits in 0.0 MB \(t\); the smallest, IQ9_X"
    ):
        choose(variants, Budget(9, "t"), None, "m")


def test_the_index_is_ordered_best_first_and_refuses_a_quantization_twice() -> None:
    a, b, c = _variant("Q4_K_M", 45), _variant("F16", 160), _variant("Q8_0", 80)
    index = variant_index([a, b, c], "m")
    assert [v.quantization for v in variants_of(index)] == ["F16", "Q8_0", "Q4_K_M"]
    assert encode(variant_index([c, a, b], "m")) == encode(index)
    assert variants_of(index) == [b, c, a]  # the annotations read back to the same values
    other = Variant(_variant("x", 1).descriptor, "q8_0", 1, "", None, 1, 1)
    with pytest.raises(VariantError, match="two variants are q8_0"):
        variant_index([c, other], "m")
