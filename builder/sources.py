"""Where a Modelfile's FROM, ADAPTER and DRAFT values point: a file, a directory, a store blob
or a model in the store. Resolution reads GGUF headers but copies nothing.

A directory may hold several models (a Hugging Face download): ``FROM ./dir:Q4_K_M`` picks one
(see hf.py). A split GGUF (``x-00001-of-00003.gguf`` …) resolves to its first shard with the others
in ``shards``; its ``info`` lists the tensors of every shard, so the config counts them all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from mdl.builder.hf import Picked, Where, complete_shards, pick, split_quant
from mdl.spec.digest import Digest
from mdl.spec.errors import GGUFError, InvalidReference, ModelfileError, NotFound
from mdl.spec.gguf import GGUFInfo, read_gguf_file
from mdl.spec.reference import Reference
from mdl.store.models import StoredModel, load_model
from mdl.store.shards import parse_shard_name
from mdl.store.store import Store

_BLOB = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class GGUFSource:
    """A GGUF file to become a layer: on disk, or already a store blob (``digest`` set)."""

    path: Path
    info: GGUFInfo
    line: int
    digest: Digest | None = None
    shards: tuple[GGUFSource, ...] = ()
    """A split GGUF's other shards, in order (this source is the first)."""
    projector: GGUFSource | None = None
    """The vision projector found beside the model in a directory (see hf.py)."""


def resolve_gguf(
    store: Store, value: str, *, context: Path, path: str, line: int, what: str
) -> GGUFSource:
    """A GGUF named by a file path (relative to ``context``), a directory or a blob digest."""
    where = Where(path, line, what, value)
    if _BLOB.match(value):
        digest = Digest.parse(value)
        if not store.has_blob(digest):
            raise where.error("no such blob in the store")
        return _source((store.blob_path(digest),), digest, where)
    picked = _gguf_files(value, context, where)
    source = _source(picked.files, None, where)
    if picked.projector is None:
        return source
    if what != "FROM":
        raise where.error(f"names a model's directory (it holds {picked.projector.name})")
    projector = _source((picked.projector,), None, where)
    return replace(source, projector=replace(projector, line=0))


def _source(files: tuple[Path, ...], known: Digest | None, where: Where) -> GGUFSource:
    infos = []
    for file in files:
        try:
            infos.append(read_gguf_file(file))
        except GGUFError as exc:
            raise where.error(str(exc)) from exc
    count, no = infos[0].metadata.get("split.count", 1), infos[0].metadata.get("split.no", 0)
    if len(files) == 1 and isinstance(count, int) and isinstance(no, int) and count > 1:
        raise where.error(
            f"is shard {no + 1} of a GGUF split in {count}; FROM the first shard's file "
            "(named <prefix>-00001-of-0000N.gguf, beside the others) or its directory"
        )
    if len(files) > 1:
        if where.what != "FROM":
            raise where.error(f"a split GGUF ({len(files)} shards) can only be the FROM model")
        check_split(files, infos, where)
        rest = tuple(GGUFSource(f, i, 0) for f, i in zip(files[1:], infos[1:], strict=True))
        merged = replace(infos[0], tensors=tuple(t for i in infos for t in i.tensors))
        return GGUFSource(files[0], merged, where.line, known, rest)
    return GGUFSource(files[0], infos[0], where.line, known)


def check_split(files: tuple[Path, ...], infos: list[GGUFInfo], where: Where) -> None:
    """Every shard's header agrees with its place: ``split.no`` is its index, ``split.count``
    the number of shards, and the tensors add up to the first shard's ``split.tensors.count``."""
    for no, (file, info) in enumerate(zip(files, infos, strict=True)):
        got = (info.metadata.get("split.no"), info.metadata.get("split.count"))
        if got != (no, len(files)):
            raise where.error(
                f"{file.name}: header says shard split.no={got[0]} of split.count={got[1]}, "
                f"but the file is shard {no} (0-based) of {len(files)}: shards out of order "
                "or from different models"
            )
    total = infos[0].metadata.get("split.tensors.count")
    found = sum(info.tensor_count for info in infos)
    if total is not None and total != found:
        raise where.error(f"the shards hold {found} tensors, the first says {total}")


def resolve_base(
    store: Store, value: str, *, context: Path, path: str, line: int
) -> GGUFSource | StoredModel:
    """FROM: a GGUF (file, directory, blob) or, when no such file exists, a model in the store."""
    candidate = (context / Path(value).expanduser()) if value else context
    quantized = split_quant(value, context)[1] is not None
    if _BLOB.match(value) or candidate.exists() or quantized or _looks_like_path(value):
        return resolve_gguf(store, value, context=context, path=path, line=line, what="FROM")
    try:
        return load_model(store, Reference.parse(value))
    except (InvalidReference, NotFound) as exc:
        raise ModelfileError(
            path, line, f"FROM {value}: no such file, and no such model in the store ({exc})"
        ) from exc


def _looks_like_path(value: str) -> bool:
    return value.startswith((".", "/", "~")) or value.lower().endswith(".gguf")


def _gguf_files(value: str, context: Path, where: Where) -> Picked:
    name, quant = split_quant(value, context)
    file = context / Path(name).expanduser()  # an absolute value replaces the context
    if file.is_dir():
        return pick(file, quant, where)
    if not file.is_file():
        raise where.error("no such file")
    parsed = parse_shard_name(file.name)
    if parsed is None:
        return Picked((file,), None)
    prefix, no, count = parsed
    if no != 1:
        raise where.error(f"is shard {no} of {count}; FROM the first shard")
    siblings = {}
    for sibling in file.parent.iterdir():
        other = parse_shard_name(sibling.name)
        if other and other[0] == prefix and other[2] == count and sibling.is_file():
            siblings[other[1]] = sibling
    return Picked(complete_shards(siblings, prefix, count, where), None)
