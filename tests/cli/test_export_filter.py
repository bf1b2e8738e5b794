"""``mdl export REF DIR --filter KINDS`` unpacks only some kinds of files, as ``kit unpack
--filter`` does; a split model unpacks to shards llama.cpp can load from the directory."""

from __future__ import annotations

import shutil
from pathlib import Path

from cli_runner import MdlRunner
from ggufs import write_split_gguf

KINDS = (
    "model, adapter, projector, draft, template, system, params, messages, license, modelfile, "
    "other"
)


def _build(mdl: MdlRunner, work: Path, models_dir: Path) -> None:
    shutil.copy(models_dir / "tiny.gguf", work / "tiny.gguf")
    shutil.copy(models_dir / "lora.gguf", work / "lora.gguf")
    (work / "Modelfile").write_text(
        'FROM ./tiny.gguf\nADAPTER ./lora.gguf\nTEMPLATE "{{ .Prompt }}"\nSYSTEM hi\n'
        "PARAMETER top_k 7\nLICENSE MIT\nLICENSE Apache-2.0\n"
    )
    mdl("build", "-q", "-t", "tiny", cwd=work)


def _files(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


def test_filter_unpacks_only_the_kinds_named(
    mdl: MdlRunner, tmp_path: Path, models_dir: Path
) -> None:
    _build(mdl, tmp_path, models_dir)
    out = tmp_path / "some"
    written = mdl("export", "tiny", str(out), "--filter", "model,template,license", "--json")
    assert sorted(written.json()["files"]) == [str(out / f) for f in _files(out)]
    assert _files(out) == ["LICENSE", "LICENSE.2", "model.gguf", "template"]
    assert (out / "model.gguf").read_bytes() == (models_dir / "tiny.gguf").read_bytes()
    assert (out / "template").read_text() == "{{ .Prompt }}"
    mdl("export", "tiny", str(tmp_path / "adapters"), "--filter", "Adapter , params")
    adapters = _files(tmp_path / "adapters")
    assert (
        len(adapters) == 2 and adapters[0].startswith("adapters/") and adapters[1] == "params.json"
    )
    mdl("export", "tiny", str(tmp_path / "all"))
    # weights, adapter, template, system, params, two licenses, the Modelfile
    assert len(_files(tmp_path / "all")) == 8


def test_an_unknown_kind_is_an_error_listing_the_valid_ones(
    mdl: MdlRunner, tmp_path: Path, models_dir: Path
) -> None:
    _build(mdl, tmp_path, models_dir)
    failed = mdl("export", "tiny", str(tmp_path / "out"), "--filter", "model,weights", ok=False)
    assert failed.code == 2
    assert f"--filter: unknown kind 'weights'; valid kinds are {KINDS}" in failed.err
    assert not (tmp_path / "out").exists()
    failed = mdl("export", "tiny", str(tmp_path / "out"), "--filter", ",", ok=False)
    assert failed.code == 2 and "--filter: no kind" in failed.err


def test_a_split_model_unpacks_to_loadable_shard_names(
    mdl: MdlRunner, tmp_path: Path, models_dir: Path
) -> None:
    (tmp_path / "split").mkdir()
    shards = write_split_gguf(models_dir / "tiny.gguf", tmp_path / "split" / "tiny.gguf", 8)
    (tmp_path / "Modelfile").write_text("FROM ./split\n")
    mdl("build", "-q", "-t", "sharded", cwd=tmp_path)
    out = tmp_path / "out"
    mdl("export", "sharded", str(out), "--filter", "model")
    names = [f"model-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    assert _files(out) == names
    for name, shard in zip(names, shards, strict=True):
        assert (out / name).read_bytes() == shard.read_bytes()
    (tmp_path / "Modelfile").write_text(f"FROM {out / names[0]}\n")  # loads back as one model
    again = mdl("inspect", mdl("build", "-q", cwd=tmp_path).out.strip()).json()
    paths = [la["annotations"]["org.cncf.model.filepath"] for la in again["manifest"]["layers"]]
    assert paths[:3] == ["model.gguf", "model-00002-of-00003.gguf", "model-00003-of-00003.gguf"]
