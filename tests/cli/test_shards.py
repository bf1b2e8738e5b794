"""Split GGUF models (gguf-split's ``x-0000N-of-0000M.gguf``): built as one layer per shard, in
order, and served as one model by llama.cpp, which opens every shard."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
from cli_runner import MdlRunner
from ggufs import write_split_gguf
from runtime.serving import Served

from mdl.spec import mediatypes as mt

PROMPT = {"prompt": "hello world", "raw": True, "stream": False}
GREEDY = {"temperature": 0, "num_predict": 12, "seed": 1}


@pytest.fixture
def split(tmp_path: Path, models_dir: Path) -> list[Path]:
    """tiny.gguf split in three shards (8, 8 and 5 tensors) under ``split/``."""
    (tmp_path / "split").mkdir()
    return write_split_gguf(models_dir / "tiny.gguf", tmp_path / "split" / "tiny.gguf", 8)


def _sha(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def _layers(mdl: MdlRunner, ref: str) -> list[tuple[str, str]]:
    manifest = mdl("inspect", ref).json()["manifest"]
    return [(la["annotations"][mt.ANNOTATION_FILEPATH], la["digest"]) for la in manifest["layers"]]


def test_a_split_gguf_becomes_one_layer_per_shard_in_order(
    mdl: MdlRunner, tmp_path: Path, models_dir: Path, split: list[Path]
) -> None:
    assert len(split) == 3
    (tmp_path / "Modelfile").write_text("FROM ./split\n")
    mdl("build", "-q", "-t", "sharded", cwd=tmp_path)
    layers = _layers(mdl, "sharded")
    assert layers[:3] == [
        ("model.gguf", _sha(split[0])),
        ("model-00002-of-00003.gguf", _sha(split[1])),
        ("model-00003-of-00003.gguf", _sha(split[2])),
    ]
    (tmp_path / "Modelfile").write_text(f"FROM {split[0]}\n")
    mdl("build", "-q", "-t", "by-first", cwd=tmp_path)
    assert _layers(mdl, "by-first") == layers
    (tmp_path / "Modelfile").write_text(f"FROM {models_dir / 'tiny.gguf'}\n")
    mdl("build", "-q", "-t", "whole", cwd=tmp_path)
    whole, sharded = (mdl("show", ref, "--json").json() for ref in ("whole", "sharded"))
    assert sharded["parameter_size"] == whole["parameter_size"]  # every shard's tensors count
    assert sharded["quantization"] == whole["quantization"] == "F32"
    (tmp_path / "Modelfile").write_text("FROM sharded\nSYSTEM hi\n")
    mdl("build", "-q", "-t", "child", cwd=tmp_path)
    assert _layers(mdl, "child")[:3] == layers[:3]


def test_missing_out_of_order_and_later_shards_are_clear_errors(
    mdl: MdlRunner, tmp_path: Path, split: list[Path]
) -> None:
    (tmp_path / "Modelfile").write_text("FROM ./split/tiny-00002-of-00003.gguf\n")
    failed = mdl("build", cwd=tmp_path, ok=False)
    assert failed.code == 2
    assert "Modelfile:1: FROM ./split/tiny-00002-of-00003.gguf: is shard 2 of 3" in failed.err
    second, third = split[1], split[2]
    swapped = tmp_path / "swap"
    os.rename(second, swapped)
    os.rename(third, second)
    os.rename(swapped, third)
    (tmp_path / "Modelfile").write_text("FROM ./split\n")
    failed = mdl("build", cwd=tmp_path, ok=False)
    assert failed.code == 2
    assert "tiny-00002-of-00003.gguf: header says shard split.no=2 of split.count=3" in failed.err
    assert "out of order" in failed.err
    third.unlink()
    failed = mdl("build", cwd=tmp_path, ok=False)
    assert failed.code == 2
    assert "split GGUF tiny lacks shard(s) tiny-00003-of-00003.gguf" in failed.err
    lone = tmp_path / "lone.gguf"
    shutil.copy(split[0], lone)
    (tmp_path / "Modelfile").write_text("FROM ./lone.gguf\n")
    failed = mdl("build", cwd=tmp_path, ok=False)
    assert "FROM ./lone.gguf: is shard 1 of a GGUF split in 3" in failed.err
    assert mdl("list", "--json").json() == {"models": []}


def test_quantizing_a_split_gguf_is_refused(
    mdl: MdlRunner, tmp_path: Path, split: list[Path]
) -> None:
    (tmp_path / "Modelfile").write_text("FROM ./split\n")
    failed = mdl("build", "--quantize", "q8_0", cwd=tmp_path, ok=False)
    assert failed.code == 2
    assert "cannot quantize a split GGUF" in failed.err


def test_a_split_model_serves_and_llama_cpp_maps_every_shard(
    mdl: MdlRunner,
    mdl_home: Path,
    tmp_path: Path,
    models_dir: Path,
    split: list[Path],
    mdl_server: Served,
) -> None:
    (tmp_path / "Modelfile").write_text("FROM ./split\n")
    mdl("build", "-q", "-t", "sharded", cwd=tmp_path)
    (tmp_path / "Modelfile").write_text(f"FROM {models_dir / 'tiny.gguf'}\n")
    mdl("build", "-q", "-t", "whole", cwd=tmp_path)
    mdl_server.start()
    status, answer = mdl_server.request(
        "POST", "/api/generate", {"model": "sharded", **PROMPT, "options": GREEDY}
    )
    assert status == 200, answer
    assert answer["eval_count"] == 12 and answer["response"]
    status, reference = mdl_server.request(
        "POST", "/api/generate", {"model": "whole", **PROMPT, "options": GREEDY}
    )
    assert status == 200, reference
    assert answer["response"] == reference["response"]  # the same tensors, from three files
    status, ps = mdl_server.request("GET", "/api/ps")
    sizes = {m["name"]: m["size"] for m in ps["models"]}
    extra = sum(p.stat().st_size for p in split) - (models_dir / "tiny.gguf").stat().st_size
    assert sizes["sharded:latest"] == sizes["whole:latest"] + extra  # every shard is counted
    blobs = {str(mdl_home / "store" / "blobs" / "sha256" / _sha(p)[7:]) for p in split}
    mapped = set()
    for pid in mdl_server.workers().values():
        mapped |= {line.split()[-1] for line in Path(f"/proc/{pid}/maps").read_text().splitlines()}
    assert blobs <= mapped, "llama.cpp did not map every shard"
    links = sorted((mdl_home / "shards").iterdir())
    assert len(links) == 1
    names = sorted(p.name for p in links[0].iterdir())
    assert names == [f"model-0000{i}-of-00003.gguf" for i in (1, 2, 3)]


def test_prune_removes_the_shard_links_of_a_removed_model(
    mdl: MdlRunner, mdl_home: Path, tmp_path: Path, split: list[Path]
) -> None:
    from mdl.spec.reference import Reference
    from mdl.store.models import load_model
    from mdl.store.shards import weights_path
    from mdl.store.store import Store

    (tmp_path / "Modelfile").write_text("FROM ./split\n")
    mdl("build", "-q", "-t", "sharded", "-t", "kept", cwd=tmp_path)
    (tmp_path / "Modelfile").write_text("FROM ./split\nSYSTEM other\n")
    mdl("build", "-q", "-t", "other", cwd=tmp_path)
    store = Store.open(mdl_home)
    for name in ("sharded", "other"):
        path = weights_path(load_model(store, Reference.parse(name)))
        assert path is not None and path.exists()
    assert len(list((mdl_home / "shards").iterdir())) == 2
    mdl("rm", "other")
    mdl("prune")
    left = list((mdl_home / "shards").iterdir())
    kept = load_model(store, Reference.parse("kept")).descriptor.digest.hex
    assert [p.name for p in left] == [kept]
