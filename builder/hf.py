"""Which GGUF model in a directory a ``FROM ./dir[:QUANT]`` means: a Hugging Face download
(``huggingface-cli download`` into the cache, with ``snapshots/<rev>/`` links into ``blobs/``, or
``--local-dir``) or any directory of GGUF files.

As Docker Model Runner reads ``hf.co/org/repo:QUANT``: the quantization is matched against the
file names, case-insensitively, as a whole word (``q4_k_m`` matches ``model.Q4_K_M.gguf`` and
``Q4_K_M/model-00001-of-00002.gguf``, never ``Q4_K_M_L``); without one, ``Q4_K_M`` if the directory
has it, else its only model. The shards of a split GGUF count as one model. Files whose name
holds ``mmproj`` are vision projectors, never the model; as Docker Model Runner does, the
directory's projector (the F16 one if several) comes along as ``projector.gguf``. Where Docker
Model Runner falls back (an explicit quantization no file has, several models and no Q4_K_M), mdl
stops with an error that lists the choices.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mdl.spec.errors import ModelfileError
from mdl.store.shards import parse_shard_name, shard_name

DEFAULT_QUANT = "Q4_K_M"
_QUANT = re.compile(r"^[A-Za-z0-9_]+$")


@dataclass(frozen=True)
class Where:
    """The Modelfile line being resolved, for errors."""

    path: str
    line: int
    what: str
    value: str

    def error(self, message: str) -> ModelfileError:
        return ModelfileError(self.path, self.line, f"{self.what} {self.value}: {message}")


@dataclass(frozen=True)
class Candidate:
    label: str
    """The file (the first shard of a split model) relative to the directory."""
    files: tuple[Path, ...]


def split_quant(value: str, context: Path) -> tuple[str, str | None]:
    """``./dir:Q4_K_M`` -> (``./dir``, ``Q4_K_M``) when ``./dir`` is a directory (and no file is
    named ``dir:Q4_K_M``); else as is."""
    if (context / Path(value).expanduser()).exists():
        return value, None
    head, sep, quant = value.rpartition(":")
    if sep and head and _QUANT.match(quant) and (context / Path(head).expanduser()).is_dir():
        return head, quant
    return value, None


@dataclass(frozen=True)
class Picked:
    files: tuple[Path, ...]
    """The model's file, or its shards in order."""
    projector: Path | None


def pick(directory: Path, quant: str | None, where: Where) -> Picked:
    """The model ``quant`` names in ``directory``, and the directory's projector."""
    root = snapshot(directory, where)
    projectors = sorted(p for p in _ggufs(root) if _is_projector(p))
    f16 = [p for p in projectors if "f16" in p.name.lower()]
    chosen = f16 or projectors
    return Picked(_model(root, quant, where), chosen[0] if chosen else None)


def _model(root: Path, quant: str | None, where: Where) -> tuple[Path, ...]:
    found = candidates(root, where)
    if not found:
        raise where.error("directory holds no .gguf model")
    wanted = quant or DEFAULT_QUANT
    matching = [c for c in found if _names_quant(c.label, wanted)]
    if len(matching) == 1:
        return matching[0].files
    if not matching and quant is None and len(found) == 1:
        return found[0].files
    choices = ", ".join(c.label for c in found)
    if matching:
        choices = ", ".join(c.label for c in matching)
        raise where.error(f"{len(matching)} files match {wanted}; rename or name one: {choices}")
    if quant is None:
        raise where.error(
            f"directory holds {len(found)} .gguf files and none is {DEFAULT_QUANT}; "
            f"name one as {where.value}:QUANT ({choices})"
        )
    raise where.error(f"no GGUF file matches {quant}; the directory holds {choices}")


def snapshot(directory: Path, where: Where) -> Path:
    """A Hugging Face cache entry (``models--org--repo``) means its ``refs/main`` snapshot, or its
    only one; any other directory means itself."""
    snapshots = directory / "snapshots"
    if not snapshots.is_dir():
        return directory
    ref = directory / "refs" / "main"
    if ref.is_file():
        chosen = snapshots / ref.read_text().strip()
        if chosen.is_dir():
            return chosen
    revisions = sorted(p for p in snapshots.iterdir() if p.is_dir())
    if len(revisions) == 1:
        return revisions[0]
    names = ", ".join(p.name for p in revisions) or "none"
    raise where.error(f"no refs/main and {len(revisions)} snapshots ({names}); FROM one of them")


def candidates(root: Path, where: Where) -> list[Candidate]:
    """Every GGUF model under ``root``; split models grouped, checked complete, in order."""
    singles: list[Candidate] = []
    groups: dict[tuple[Path, str, int], dict[int, Path]] = {}
    for file in _ggufs(root):
        if _is_projector(file):
            continue
        parsed = parse_shard_name(file.name)
        if parsed is None:
            singles.append(Candidate(str(file.relative_to(root)), (file,)))
            continue
        prefix, no, count = parsed
        groups.setdefault((file.parent, prefix, count), {})[no] = file
    for (parent, prefix, count), shards in groups.items():
        first = parent / shard_name(prefix, 1, count)
        label = str(first.relative_to(root))
        singles.append(Candidate(label, complete_shards(shards, prefix, count, where)))
    return sorted(singles, key=lambda c: c.label)


def complete_shards(
    shards: dict[int, Path], prefix: str, count: int, where: Where
) -> tuple[Path, ...]:
    missing = [shard_name(prefix, no, count) for no in range(1, count + 1) if no not in shards]
    if missing:
        raise where.error(f"split GGUF {prefix} lacks shard(s) {', '.join(missing)}")
    return tuple(shards[no] for no in range(1, count + 1))


def _ggufs(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() == ".gguf" and p.is_file())


def _is_projector(path: Path) -> bool:
    return "mmproj" in path.name.lower()


def _names_quant(label: str, quant: str) -> bool:
    pattern = rf"(?<![a-z0-9]){re.escape(quant.lower())}(?![a-z0-9_])"
    return re.search(pattern, label.lower()) is not None
