"""The index of variants the variant tests share: ``wide:v``, Q4_K_M, Q8_0 and F16 of one F32
model whose rows fit the K-quants, built through the real CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cli_runner import MdlRunner
from ggufs import write_wide_llama

TYPES = "q4_K_M,q8_0,f16"


def variants_workdir(tmp_path: Path) -> Path:
    """A build context: ``wide.gguf`` and a Modelfile that loads it at num_ctx 256."""
    work = tmp_path / "work"
    work.mkdir()
    write_wide_llama(work / "wide.gguf")
    (work / "Modelfile").write_text("FROM ./wide.gguf\nPARAMETER num_ctx 256\n")
    return work


def build_index(mdl: MdlRunner, work: Path) -> dict[str, Any]:
    """``mdl build --variants TYPES -t wide:v --json`` in ``work``: the index and its variants."""
    built: dict[str, Any] = mdl(
        "build", "--variants", TYPES, "-t", "wide:v", "--json", cwd=work
    ).json()
    return built


def store_blobs(home: Path) -> set[str]:
    """The digests of every blob in the store of MDL_HOME ``home``."""
    return {"sha256:" + p.name for p in (home / "store" / "blobs" / "sha256").iterdir()}
