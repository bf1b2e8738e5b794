"""Which variant of an index this machine uses: the memory budget, and the choice among the
variants the store holds (pull chooses among those on the registry, with the same rule:
``spec.variants.choose``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mdl.spec import mediatypes as mt
from mdl.spec.descriptor import Descriptor
from mdl.spec.manifest import Index
from mdl.spec.variants import (
    LIMIT_ENV,
    Budget,
    Variant,
    VariantError,
    choose,
    parse_size,
    variants_of,
)
from mdl.store.store import Store

MEMINFO = Path("/proc/meminfo")


def available_bytes(meminfo: Path = MEMINFO) -> int | None:
    """MemAvailable from /proc/meminfo, or None where there is no such file."""
    try:
        text = meminfo.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key == "MemAvailable":
            return int(value.split()[0]) * 1024
    return None


def memory_budget(
    held: int = 0, environ: Mapping[str, str] = os.environ, meminfo: Path = MEMINFO
) -> Budget | None:
    """``MDL_MEMORY_LIMIT`` when set; else the RAM available now plus ``held``, what mdl
    itself has loaded and would free to load another variant. None: not known."""
    stated = environ.get(LIMIT_ENV)
    if stated:
        return Budget(parse_size(stated), LIMIT_ENV)
    available = available_bytes(meminfo)
    if available is None:
        return None
    return Budget(available + held, "available memory")


@dataclass(frozen=True)
class Choice:
    """An index in the store: its variants, those present (pulled), and the one chosen."""

    variants: tuple[Variant, ...]
    present: frozenset[str]
    chosen: Variant


def stored_choice(
    store: Store, index: Index, budget: Budget | None, wanted: str | None, what: str
) -> Choice | None:
    """The variant to use among those the store holds whole; None when ``index`` has no
    variant annotations."""
    variants = variants_of(index)
    if not variants:
        return None
    present = [v for v in variants if store.exists(v.descriptor)]
    if not present:
        raise VariantError(f"{what}: none of its {len(variants)} variants is in the store")
    chosen = choose(present, budget, wanted, f"{what} (variants in the store)")
    return Choice(tuple(variants), frozenset(str(v.descriptor.digest) for v in present), chosen)


def missing_children(store: Store, index: Index) -> list[Descriptor]:
    """The manifests of ``index`` the store lacks (variants that were not pulled)."""
    return [
        child
        for child in index.manifests
        if child.media_type in mt.MANIFEST_TYPES | mt.INDEX_TYPES and not store.exists(child)
    ]
