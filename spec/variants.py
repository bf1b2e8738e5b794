"""One reference, many variants: an OCI image index whose entries are quantizations of one model.

Each entry is a model manifest annotated with what choosing it needs (see docs/format.md):
its quantization, file size, parameter size, trained context length and the memory it takes
loaded at the default ``num_ctx`` (``spec.footprint``'s estimate, the runtime's own number).
``choose`` is the one rule pull and serve both follow: the highest-quality variant whose memory
fits the budget. Pure: the store and the client supply the variants and the budget.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from mdl.spec import mediatypes as mt
from mdl.spec.descriptor import Descriptor
from mdl.spec.errors import MdlError
from mdl.spec.manifest import Index

PREFIX = "dev.mdl.variant."
QUANTIZATION = PREFIX + "quantization"
FILE_SIZE = PREFIX + "file-size"
PARAMETER_SIZE = PREFIX + "parameter-size"
CONTEXT_LENGTH = PREFIX + "context-length"
MEMORY = PREFIX + "memory"
NUM_CTX = PREFIX + "num-ctx"

QUALITY = (
    "F32", "BF16", "F16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q5_1", "Q5_0", "Q4_K_M",
    "Q4_K_S", "Q4_1", "Q4_0", "Q3_K_L", "Q3_K_M", "Q3_K_S", "Q2_K",
)  # fmt: skip
"""Best first: llama.cpp's quantize table ordered by the perplexity each type adds (Llama-3-8B
figures; the float types by precision). A type not listed ranks below all of them, and then
the larger file first."""

LIMIT_ENV = "MDL_MEMORY_LIMIT"


class VariantError(MdlError):
    """The variant asked for is not in the index, or there is none to choose from."""

    exit_code = 2


class NoVariantFits(VariantError):
    """Every variant needs more memory than the budget."""


@dataclass(frozen=True)
class Budget:
    """The memory a variant may need, and where the figure came from (for messages)."""

    bytes: int
    source: str


@dataclass(frozen=True)
class Variant:
    descriptor: Descriptor
    quantization: str
    file_size: int
    parameter_size: str
    context_length: int | None
    memory: int
    num_ctx: int

    @classmethod
    def of(cls, entry: Descriptor) -> Variant | None:
        """The variant an index entry describes; None for an entry without mdl's annotations
        (an image index of platforms, say)."""
        notes = entry.annotations
        if entry.media_type not in mt.MANIFEST_TYPES or QUANTIZATION not in notes:
            return None
        try:
            return cls(
                entry.with_annotations({}),
                notes[QUANTIZATION],
                int(notes.get(FILE_SIZE, "0")),
                notes.get(PARAMETER_SIZE, ""),
                int(notes[CONTEXT_LENGTH]) if CONTEXT_LENGTH in notes else None,
                int(notes.get(MEMORY, "0")),
                int(notes.get(NUM_CTX, "0")),
            )
        except ValueError:
            raise VariantError(f"{entry.digest}: variant annotations are not numbers") from None

    def entry(self) -> Descriptor:
        """The index entry: the manifest's descriptor with the annotations."""
        notes = {
            QUANTIZATION: self.quantization,
            FILE_SIZE: str(self.file_size),
            PARAMETER_SIZE: self.parameter_size,
            MEMORY: str(self.memory),
            NUM_CTX: str(self.num_ctx),
        }
        if self.context_length is not None:
            notes[CONTEXT_LENGTH] = str(self.context_length)
        return self.descriptor.with_annotations(dict(sorted(notes.items())))

    def to_json(self) -> dict[str, object]:
        """The variant in ``--json`` output (build, index create, pull, show, list)."""
        return {
            "quantization": self.quantization,
            "digest": str(self.descriptor.digest),
            "file_size": self.file_size,
            "parameter_size": self.parameter_size,
            "context_length": self.context_length,
            "memory": self.memory,
            "num_ctx": self.num_ctx,
        }

    def matches(self, wanted: str) -> bool:
        return self.quantization.lower() == wanted.lower()


def variants_of(index: Index) -> list[Variant]:
    """The annotated entries of ``index``, in its order (best first for an index mdl wrote)."""
    return [v for v in (Variant.of(entry) for entry in index.manifests) if v is not None]


def rank(variant: Variant) -> tuple[int, int]:
    """Sort key, best first."""
    name = variant.quantization.upper()
    place = QUALITY.index(name) if name in QUALITY else len(QUALITY)
    return place, -variant.file_size


def variant_index(variants: Sequence[Variant], what: str) -> Index:
    """The index of ``variants``, best first, whatever order they came in (so the same models
    give the same digest); two of one quantization would make ``--variant`` ambiguous."""
    if not variants:
        raise VariantError(f"{what}: an index needs at least one variant")
    seen: dict[str, Variant] = {}
    for variant in variants:
        earlier = seen.setdefault(variant.quantization.upper(), variant)
        if earlier.descriptor.digest != variant.descriptor.digest:
            raise VariantError(
                f"{what}: two variants are {variant.quantization} ({earlier.descriptor.digest} "
                f"and {variant.descriptor.digest}); each quantization may appear once"
            )
    ordered = sorted(seen.values(), key=rank)
    return Index(tuple(v.entry() for v in ordered))


def choose(
    variants: Sequence[Variant], budget: Budget | None, wanted: str | None, what: str
) -> Variant:
    """``wanted`` (a quantization, any letter case) if given; else the best variant whose
    memory fits ``budget`` (None: no limit known, so the best)."""
    if not variants:
        raise VariantError(f"{what}: no variant to choose from")
    if wanted is not None:
        for variant in variants:
            if variant.matches(wanted):
                return variant
        names = ", ".join(v.quantization for v in sorted(variants, key=rank))
        raise VariantError(f"{what}: no variant {wanted}; it has {names}")
    ordered = sorted(variants, key=rank)
    if budget is None:
        return ordered[0]
    for variant in ordered:
        if variant.memory <= budget.bytes:
            return variant
    smallest = min(variants, key=lambda v: v.memory)
    raise NoVariantFits(
        f"{what}: no variant fits in {human(budget.bytes)} ({budget.source}); the smallest, "
        f"{smallest.quantization}, needs {human(smallest.memory)}; choose one with --variant "
        f"or state the budget with {LIMIT_ENV}"
    )


_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*", re.IGNORECASE)
_UNITS: Mapping[str, int] = {
    "": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}  # fmt: skip


def parse_size(text: str, what: str = LIMIT_ENV) -> int:
    """Bytes from ``2147483648``, ``2GB`` (decimal) or ``512MiB`` (binary), any letter case;
    a bare ``G`` is refused as ambiguous."""
    match = _SIZE.fullmatch(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise VariantError(
            f"{what}={text!r}: want bytes, or a number with B, KB, MB, GB, TB, KiB, MiB, GiB or TiB"
        )
    return int(Fraction(match.group(1)) * _UNITS[unit])


def human(size: int) -> str:
    """A memory figure for a message, in the decimal units the CLI prints: ``1.5 GB``."""
    if size >= 10**9:
        return f"{size / 10**9:.1f} GB"
    return f"{size / 10**6:.1f} MB"
