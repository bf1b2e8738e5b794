"""``FROM`` a Hugging Face download holding several GGUF files: ``FROM ./dir:QUANT`` picks one as
Docker Model Runner picks ``hf.co/org/repo:QUANT`` (default Q4_K_M, else the only model)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from cli_runner import MdlRunner
from ggufs import write_split_gguf, write_tiny_llama
from runtime.serving import Served

from mdl.spec import mediatypes as mt

REVISION = "5f1c3b2a9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cache_entry(root: Path, files: dict[str, Path]) -> Path:
    """``models--org--repo`` as huggingface-cli leaves it: content under ``blobs/<sha256>``,
    ``snapshots/<rev>/<name>`` symlinks to it, ``refs/main`` naming the revision."""
    entry = root / "models--org--tiny-GGUF"
    (entry / "blobs").mkdir(parents=True)
    (entry / "refs").mkdir()
    (entry / "refs" / "main").write_text(REVISION)
    snapshot = entry / "snapshots" / REVISION
    for name, source in files.items():
        blob = entry / "blobs" / _sha(source)
        shutil.copy(source, blob)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path("../" * (name.count("/") + 2)) / "blobs" / blob.name)
    return entry


@pytest.fixture
def ggufs(tmp_path: Path, models_dir: Path) -> dict[str, Path]:
    write_tiny_llama(tmp_path / "tiny-c.gguf", seed=2, name="tiny-c")
    return {
        "q4": models_dir / "tiny.gguf",
        "q8": models_dir / "tiny-b.gguf",
        "f16": tmp_path / "tiny-c.gguf",
    }


@pytest.fixture
def entry(tmp_path: Path, ggufs: dict[str, Path]) -> Path:
    (tmp_path / "hub").mkdir()
    return _cache_entry(
        tmp_path / "hub",
        {
            "tiny.Q4_K_M.gguf": ggufs["q4"],
            "tiny.Q8_0.gguf": ggufs["q8"],
            "tiny.F16.gguf": ggufs["f16"],
            "tiny-mmproj-Q8_0.gguf": ggufs["q4"],
            "mmproj-tiny-f16.gguf": ggufs["f16"],
            "README.md": ggufs["f16"],
        },
    )


def _weights(mdl: MdlRunner, ref: str) -> str:
    files = mdl("show", ref, "--json").json()["files"]
    return str(files[mt.WEIGHTS_FILE]).removeprefix("sha256:")


def _build(mdl: MdlRunner, cwd: Path, from_: str, tag: str, ok: bool = True) -> str:
    (cwd / "Modelfile").write_text(f"FROM {from_}\n")
    return mdl("build", "-q", "-t", tag, cwd=cwd, ok=ok).err


def test_the_quant_tag_picks_the_file_case_insensitively_default_q4_k_m(
    mdl: MdlRunner, tmp_path: Path, entry: Path, ggufs: dict[str, Path]
) -> None:
    rel = f"./hub/{entry.name}"
    _build(mdl, tmp_path, rel, "default")
    assert _weights(mdl, "default") == _sha(ggufs["q4"])
    files = mdl("show", "default", "--json").json()["files"]  # the projector comes along, F16
    assert files[mt.PROJECTOR_FILE] == "sha256:" + _sha(ggufs["f16"])
    _build(mdl, tmp_path, f"{rel}:q8_0", "q8")  # tiny-mmproj-Q8_0.gguf is no model
    assert _weights(mdl, "q8") == _sha(ggufs["q8"])
    _build(mdl, tmp_path, f"{rel}/snapshots/{REVISION}:F16", "f16")
    assert _weights(mdl, "f16") == _sha(ggufs["f16"])
    _build(mdl, tmp_path, f"{entry}:Q4_K_M", "absolute")
    assert _weights(mdl, "absolute") == _sha(ggufs["q4"])


def test_a_missing_quant_names_the_line_and_lists_the_choices(
    mdl: MdlRunner, tmp_path: Path, entry: Path
) -> None:
    (tmp_path / "Modelfile").write_text(f"# a comment\nFROM ./hub/{entry.name}:Q5_K_S\n")
    failed = mdl("build", cwd=tmp_path, ok=False)
    assert failed.code == 2
    assert (
        f"Modelfile:2: FROM ./hub/{entry.name}:Q5_K_S: no GGUF file matches Q5_K_S; the "
        "directory holds tiny.F16.gguf, tiny.Q4_K_M.gguf, tiny.Q8_0.gguf"
    ) in failed.err
    assert mdl("list", "--json").json() == {"models": []}


def test_without_q4_k_m_the_only_model_or_a_listed_choice(
    mdl: MdlRunner, tmp_path: Path, ggufs: dict[str, Path]
) -> None:
    local = tmp_path / "local"  # as --local-dir leaves it: plain files
    local.mkdir()
    shutil.copy(ggufs["q8"], local / "tiny-Q8_0.gguf")
    _build(mdl, tmp_path, "./local", "only")
    assert _weights(mdl, "only") == _sha(ggufs["q8"])
    shutil.copy(ggufs["f16"], local / "tiny-BF16.gguf")
    err = _build(mdl, tmp_path, "./local", "two", ok=False)
    assert (
        "FROM ./local: directory holds 2 .gguf files and none is Q4_K_M; name one as "
        "./local:QUANT (tiny-BF16.gguf, tiny-Q8_0.gguf)"
    ) in err
    err = _build(mdl, tmp_path, "./local:F16", "f16", ok=False)  # F16 is not BF16
    assert "no GGUF file matches F16" in err
    _build(mdl, tmp_path, "./local:bf16", "bf16")
    assert _weights(mdl, "bf16") == _sha(ggufs["f16"])


def test_a_split_quant_in_a_subfolder_builds_and_serves(
    mdl: MdlRunner, tmp_path: Path, ggufs: dict[str, Path], mdl_server: Served
) -> None:
    (tmp_path / "parts").mkdir()
    shards = write_split_gguf(ggufs["q8"], tmp_path / "parts" / "tiny-Q8_0.gguf", 8)
    files = {f"Q8_0/{p.name}": p for p in shards}
    (tmp_path / "hub").mkdir()
    entry = _cache_entry(tmp_path / "hub", {"tiny.Q4_K_M.gguf": ggufs["q4"], **files})
    _build(mdl, tmp_path, f"./hub/{entry.name}:Q8_0", "split")
    layers = mdl("inspect", "split").json()["manifest"]["layers"]
    assert [la["digest"][7:] for la in layers[:3]] == [_sha(p) for p in shards]
    err = _build(mdl, tmp_path, f"./hub/{entry.name}:Q6_K", "none", ok=False)
    assert "the directory holds Q8_0/tiny-Q8_0-00001-of-00003.gguf, tiny.Q4_K_M.gguf" in err
    mdl_server.start()
    request = {"model": "split", "prompt": "hi", "stream": False, "options": {"num_predict": 8}}
    status, body = mdl_server.request("POST", "/api/generate", request)
    assert status == 200 and body["eval_count"] == 8, body
