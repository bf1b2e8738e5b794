"""Where a Modelfile's FROM, ADAPTER and DRAFT values point: a file, a directory, a store blob
or a model in the store. Resolution reads GGUF headers but copies nothing."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mdl.spec.digest import Digest
from mdl.spec.errors import GGUFError, InvalidReference, ModelfileError, NotFound
from mdl.spec.gguf import GGUFInfo, read_gguf_file
from mdl.spec.reference import Reference
from mdl.store.models import StoredModel, load_model
from mdl.store.store import Store

_BLOB = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class GGUFSource:
    """A GGUF file to become a layer: on disk, or already a store blob (``digest`` set)."""

    path: Path
    info: GGUFInfo
    line: int
    digest: Digest | None = None


def resolve_gguf(
    store: Store, value: str, *, context: Path, path: str, line: int, what: str
) -> GGUFSource:
    """A GGUF named by a file path (relative to ``context``), a directory or a blob digest."""
    if _BLOB.match(value):
        digest = Digest.parse(value)
        if not store.has_blob(digest):
            raise ModelfileError(path, line, f"{what} {value}: no such blob in the store")
        file, known = store.blob_path(digest), digest
    else:
        file, known = _gguf_file(value, context, path, line, what), None
    try:
        info = read_gguf_file(file)
    except GGUFError as exc:
        raise ModelfileError(path, line, f"{what} {value}: {exc}") from exc
    return GGUFSource(file, info, line, known)


def resolve_base(
    store: Store, value: str, *, context: Path, path: str, line: int
) -> GGUFSource | StoredModel:
    """FROM: a GGUF (file, directory, blob) or, when no such file exists, a model in the store."""
    candidate = (context / Path(value).expanduser()) if value else context
    if _BLOB.match(value) or candidate.exists() or _looks_like_path(value):
        return resolve_gguf(store, value, context=context, path=path, line=line, what="FROM")
    try:
        return load_model(store, Reference.parse(value))
    except (InvalidReference, NotFound) as exc:
        raise ModelfileError(
            path, line, f"FROM {value}: no such file, and no such model in the store ({exc})"
        ) from exc


def _looks_like_path(value: str) -> bool:
    return value.startswith((".", "/", "~")) or value.lower().endswith(".gguf")


def _gguf_file(value: str, context: Path, path: str, line: int, what: str) -> Path:
    file = context / Path(value).expanduser()  # an absolute value replaces the context
    if file.is_dir():
        found = sorted(p for p in file.iterdir() if p.suffix.lower() == ".gguf" and p.is_file())
        if len(found) != 1:
            count = "no" if not found else f"{len(found)}"
            raise ModelfileError(
                path, line, f"{what} {value}: directory holds {count} .gguf files, want exactly one"
            )
        return found[0]
    if not file.is_file():
        raise ModelfileError(path, line, f"{what} {value}: no such file")
    return file
