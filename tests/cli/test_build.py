"""``mdl build`` through the real CLI: layers, config, determinism, inheritance, errors."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from cli_runner import MdlRunner
from ggufs import write_not_gguf, write_truncated, write_wide_llama

from mdl.spec.gguf import read_gguf_info

GO_TEMPLATE = "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}{{ .Prompt }}"


def _modelfile(directory: Path, text: str, name: str = "Modelfile") -> Path:
    path = directory / name
    path.write_text(text)
    return path


def _blob(home: Path, digest: str) -> bytes:
    return (home / "store" / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()


def _hex12(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def _manifest(mdl: MdlRunner, ref: str) -> dict[str, Any]:
    return mdl("inspect", ref).json()["manifest"]


def _files(home: Path, manifest: dict[str, Any]) -> dict[str, bytes]:
    return {
        layer["annotations"]["org.cncf.model.filepath"]: _blob(home, layer["digest"])
        for layer in manifest["layers"]
    }


@pytest.fixture
def work(tmp_path: Path, models_dir: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    for name in ("tiny.gguf", "lora.gguf", "lora-b.gguf", "qwen-lora.gguf"):
        shutil.copy(models_dir / name, work / name)
    return work


FULL = f'''# every instruction
FROM ./tiny.gguf
ADAPTER ./lora.gguf
ADAPTER lora-b.gguf
TEMPLATE """{GO_TEMPLATE}"""
SYSTEM """You are a
tiny model."""
PARAMETER temperature 0.7
PARAMETER num_ctx 256
PARAMETER stop "<|im_end|>"
PARAMETER stop </s>
PARAMETER use_mmap true
MESSAGE user Hello & welcome
MESSAGE assistant Hi!
LICENSE "MIT"
LICENSE """Second
license"""
REQUIRES 0.5.0
'''


def test_build_writes_one_modelpack_layer_per_part(
    mdl: MdlRunner, mdl_home: Path, work: Path, models_dir: Path
) -> None:
    _modelfile(work, FULL)
    built = mdl("build", "-t", "tiny", "--json", cwd=work).json()
    manifest = _manifest(mdl, "tiny")
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["artifactType"] == "application/vnd.cncf.model.manifest.v1+json"
    assert manifest["config"]["mediaType"] == "application/vnd.cncf.model.config.v1+json"
    layout = [
        (layer["annotations"]["org.cncf.model.filepath"], layer["mediaType"])
        for layer in manifest["layers"]
    ]
    weight, config, doc = (
        "application/vnd.cncf.model.weight.v1.raw",
        "application/vnd.cncf.model.weight.config.v1.raw",
        "application/vnd.cncf.model.doc.v1.raw",
    )
    assert layout == [
        ("model.gguf", weight),
        (f"adapters/{_hex12(models_dir / 'lora.gguf')}.gguf", weight),
        (f"adapters/{_hex12(models_dir / 'lora-b.gguf')}.gguf", weight),
        ("template", config),
        ("system.txt", config),
        ("params.json", config),
        ("messages.json", config),
        ("LICENSE", doc),
        ("LICENSE.2", doc),
        ("Modelfile", doc),
    ]
    files = _files(mdl_home, manifest)
    assert files["model.gguf"] == (models_dir / "tiny.gguf").read_bytes()
    assert files[layout[1][0]] == (models_dir / "lora.gguf").read_bytes()
    assert files["template"].decode() == GO_TEMPLATE
    assert files["system.txt"] == b"You are a\ntiny model."
    assert files["params.json"] == (
        b'{"num_ctx":256,"stop":["\\u003c|im_end|\\u003e","\\u003c/s\\u003e"],'
        b'"temperature":0.7,"use_mmap":true}\n'
    )
    assert files["messages.json"] == (
        b'[{"role":"user","content":"Hello \\u0026 welcome"},'
        b'{"role":"assistant","content":"Hi!"}]\n'
    )
    assert files["LICENSE"] == b"MIT" and files["LICENSE.2"] == b"Second\nlicense"
    template_layer = manifest["layers"][3]
    assert template_layer["annotations"]["dev.mdl.template.format"] == "go"
    config_doc = json.loads(_blob(mdl_home, manifest["config"]["digest"]))
    assert config_doc["config"] == {
        "format": "gguf",
        "architecture": "llama",
        "paramSize": "120.1K",
        "precision": "fp32",
        "quantization": "F32",
        "contextLength": 512,
    }
    assert config_doc["modelfs"] == {
        "type": "layers",
        "diffIds": [layer["digest"] for layer in manifest["layers"]],
    }
    assert "createdAt" not in config_doc["descriptor"]
    assert built["digest"] == mdl("inspect", "tiny").json()["digest"]
    assert [layer["filepath"] for layer in built["layers"]] == [p for p, _ in layout]


def test_build_is_reproducible_across_homes(mdl: MdlRunner, work: Path, tmp_path: Path) -> None:
    _modelfile(work, FULL)
    first = mdl("build", "-q", "-t", "a", cwd=work).out.strip()
    other = {"MDL_HOME": str(tmp_path / "other-home")}
    second = mdl("build", "-q", "-t", "b", cwd=work, env=other).out.strip()
    assert first == second and first.startswith("sha256:")
    dated = mdl("build", "-q", cwd=work, env={"SOURCE_DATE_EPOCH": "1700000000"}).out.strip()
    assert dated != first
    manifest = mdl("inspect", dated).json()
    assert manifest["manifest"]["annotations"]["org.opencontainers.image.created"] == (
        "2023-11-14T22:13:20Z"
    )
    assert manifest["config"]["descriptor"]["createdAt"] == "2023-11-14T22:13:20Z"


def test_template_defaults_to_the_gguf_chat_template(
    mdl: MdlRunner, mdl_home: Path, work: Path
) -> None:
    _modelfile(work, "FROM tiny.gguf\n")
    mdl("build", "-t", "plain", cwd=work)
    manifest = _manifest(mdl, "plain")
    files = _files(mdl_home, manifest)
    assert files["template"].decode().startswith("{% for message in messages %}")
    assert manifest["layers"][1]["annotations"]["dev.mdl.template.format"] == "jinja"
    assert "params.json" not in files and "system.txt" not in files


def test_from_a_stored_model_inherits_as_ollama_does(
    mdl: MdlRunner, mdl_home: Path, work: Path
) -> None:
    _modelfile(work, FULL)
    mdl("build", "-t", "base", cwd=work)
    _modelfile(
        work,
        'FROM base\nSYSTEM "Shorter."\nPARAMETER temperature 0.2\nPARAMETER stop END\n'
        "LICENSE Third\nMESSAGE user only\nADAPTER ./lora.gguf\n",
        "Child",
    )
    mdl("build", "-f", "Child", "-t", "child", cwd=work)
    child = mdl("show", "child", "--json").json()
    base = mdl("show", "base", "--json").json()
    assert child["system"] == "Shorter."
    assert child["template"] == GO_TEMPLATE
    assert child["parameters"] == {
        "num_ctx": 256,
        "stop": ["END"],
        "temperature": 0.2,
        "use_mmap": True,
    }
    assert child["messages"] == [{"role": "user", "content": "only"}]
    assert child["licenses"] == ["MIT", "Second\nlicense", "Third"]
    assert child["adapters"] == base["adapters"]
    assert len(child["adapters"]) == 2  # the same adapter twice is one layer
    assert child["files"]["model.gguf"] == base["files"]["model.gguf"]
    assert "REQUIRES 0.5.0" in mdl("show", "child", "--modelfile").out


def test_show_modelfile_rebuilds_the_same_model(mdl: MdlRunner, work: Path) -> None:
    _modelfile(work, FULL)
    digest = mdl("build", "-q", "-t", "orig", cwd=work).out.strip()
    printed = mdl("show", "orig", "--modelfile").out
    assert printed.startswith("FROM sha256:")
    _modelfile(work, printed, "Printed")
    again = mdl("build", "-q", "-f", "Printed", "-t", "again", cwd=work).out.strip()
    assert again == digest


def test_from_a_directory_takes_its_single_gguf(mdl: MdlRunner, work: Path) -> None:
    weights = work / "weights"
    weights.mkdir()
    shutil.copy(work / "tiny.gguf", weights / "model.gguf")
    _modelfile(work, "FROM ./weights\n")
    by_dir = mdl("build", "-q", cwd=work).out.strip()
    _modelfile(work, "FROM ./tiny.gguf\n")
    assert mdl("build", "-q", cwd=work).out.strip() == by_dir
    shutil.copy(work / "tiny.gguf", weights / "other.gguf")
    _modelfile(work, "FROM ./weights\n")
    failed = mdl("build", cwd=work, ok=False)
    assert failed.code == 2
    assert "Modelfile:1: FROM ./weights: directory holds 2 .gguf files" in failed.err


def test_stdin_and_utf16_modelfiles(mdl: MdlRunner, work: Path) -> None:
    text = 'FROM ./tiny.gguf\nSYSTEM "héllo wörld"\n'
    from_stdin = mdl("build", "-q", "-f", "-", cwd=work, stdin=text.encode()).out.strip()
    (work / "Modelfile").write_bytes(b"\xff\xfe" + text.encode("utf-16-le"))
    assert mdl("build", "-q", cwd=work).out.strip() == from_stdin
    assert mdl("show", from_stdin and f"x@{from_stdin}", "--system").out == "héllo wörld\n"


def _store_state(home: Path) -> tuple[list[str], bytes]:
    blobs = sorted(p.name for p in (home / "store" / "blobs" / "sha256").iterdir())
    return blobs, (home / "store" / "index.json").read_bytes()


@pytest.mark.parametrize(
    ("modelfile", "message"),
    [
        ("FORM ./tiny.gguf\n", 'Modelfile:1: unknown instruction "FORM"'),
        ("# nothing\nSYSTEM hi\n", "Modelfile:1: no FROM line"),
        ("FROM ./missing.gguf\n", "Modelfile:1: FROM ./missing.gguf: no such file"),
        ("FROM nosuchmodel\n", "Modelfile:1: FROM nosuchmodel: no such file, and no such model"),
        ("FROM ./notgguf.bin\n", "Modelfile:1: FROM ./notgguf.bin: "),
        ("FROM ./cut.gguf\n", "truncated GGUF"),
        ("FROM ./lora.gguf\n", "Modelfile:1: FROM names a LoRA adapter, not a model"),
        (
            "FROM ./tiny.gguf\n\nADAPTER ./tiny.gguf\n",
            "Modelfile:3: ADAPTER ./tiny.gguf: not a LoRA",
        ),
        (
            "FROM ./tiny.gguf\nADAPTER ./lora.gguf\nADAPTER ./qwen-lora.gguf\n",
            "Modelfile:3: ADAPTER ./qwen-lora.gguf: architecture 'qwen2' does not match "
            "the model's 'llama'",
        ),
        ("FROM ./tiny.gguf\nPARAMETER temperature hot\n", "Modelfile:2:"),
        ("FROM ./tiny.gguf\nMESSAGE robot hi\n", "Modelfile:2:"),
        ('FROM ./tiny.gguf\nSYSTEM """never closed\n', "Modelfile:2:"),
    ],
)
def test_a_bad_build_names_file_and_line_and_writes_nothing(
    mdl: MdlRunner, mdl_home: Path, work: Path, modelfile: str, message: str
) -> None:
    write_not_gguf(work / "notgguf.bin")
    write_truncated(work / "cut.gguf", cut="data")
    _modelfile(work, "FROM ./tiny.gguf\n", "Good")
    mdl("build", "-f", "Good", "-t", "good", cwd=work)
    before = _store_state(mdl_home)
    _modelfile(work, modelfile)
    failed = mdl("build", "-t", "bad", cwd=work, ok=False)
    assert failed.code == 2
    assert message in failed.err
    assert len(failed.err.strip().splitlines()) == 1
    assert _store_state(mdl_home) == before
    assert not list((mdl_home / "store" / "ingest").iterdir())


def test_rebuilding_an_unchanged_file_copies_nothing(mdl: MdlRunner, work: Path) -> None:
    _modelfile(work, "FROM ./tiny.gguf\n")
    first = mdl("build", "--json", cwd=work).json()
    assert first["bytes_copied"] == (work / "tiny.gguf").stat().st_size
    second = mdl("build", "--json", cwd=work).json()
    assert second["bytes_copied"] == 0 and second["digest"] == first["digest"]


def test_labels_and_iidfile(mdl: MdlRunner, work: Path) -> None:
    _modelfile(work, "FROM ./tiny.gguf\n")
    mdl(
        "build",
        "-t",
        "l:1",
        "-t",
        "l:latest",
        "--label",
        "org.opencontainers.image.version=1.0",
        "--iidfile",
        "iid",
        cwd=work,
    )
    manifest = mdl("inspect", "l:1").json()
    assert manifest["manifest"]["annotations"] == {"org.opencontainers.image.version": "1.0"}
    assert manifest["config"]["descriptor"]["version"] == "1.0"
    assert (work / "iid").read_text() == manifest["digest"]
    assert mdl("inspect", "l").json()["digest"] == manifest["digest"]


def test_quantize_writes_the_type_the_config_records(
    mdl: MdlRunner, mdl_home: Path, tmp_path: Path
) -> None:
    write_wide_llama(tmp_path / "wide.gguf", dtype="f16")
    _modelfile(tmp_path, "FROM ./wide.gguf\n")
    built = mdl("build", "--quantize", "q4_K_M", "-t", "wide:q4", "--json", cwd=tmp_path).json()
    weights = _blob(mdl_home, built["layers"][0]["digest"])
    written = read_gguf_info(io.BytesIO(weights), len(weights))
    assert built["config"]["config"]["quantization"] == written.quantization == "Q4_K_M"
    assert built["quantized"] == {
        "from": "sha256:" + hashlib.sha256((tmp_path / "wide.gguf").read_bytes()).hexdigest(),
        "type": "Q4_K_M",
        "reused": False,
    }
    assert built["bytes_copied"] == len(weights) < (tmp_path / "wide.gguf").stat().st_size
    again = mdl("build", "--quantize", "Q4_K_M", "-t", "wide:q4", "--json", cwd=tmp_path).json()
    assert again["quantized"]["reused"] and again["bytes_copied"] == 0
    assert again["digest"] == built["digest"]
    quiet = mdl("build", "-q", "--quantize", "q4_K_M", cwd=tmp_path).out
    assert quiet == f"{built['digest']}\n"
    assert "--quantize" in mdl("build", "--help").out


@pytest.mark.parametrize(
    ("modelfile", "qtype", "message"),
    [
        ("FROM ./tiny.gguf\n", "q4_K_M", "rows of 64 elements, not a multiple of the 256"),
        ("FROM base\n", "q8_0", "Modelfile:1: FROM base: cannot quantize to q8_0: the weights "
         "are already quantized (Q4_0)"),
        ("FROM ./tiny.gguf\n", "q4_k_x", "--quantize q4_k_x: unknown type; valid types: q4_0, "),
    ],
)  # fmt: skip
def test_quantize_refusals_are_one_line_and_write_nothing(
    mdl: MdlRunner, mdl_home: Path, work: Path, modelfile: str, qtype: str, message: str
) -> None:
    _modelfile(work, "FROM ./tiny.gguf\n", "Base")
    mdl("build", "-f", "Base", "--quantize", "q4_0", "-t", "base", cwd=work)
    before = _store_state(mdl_home)
    _modelfile(work, modelfile)
    failed = mdl("build", "--quantize", qtype, "-t", "bad", cwd=work, ok=False)
    assert failed.code == 2
    assert failed.err.startswith("Error: ") and message in failed.err
    assert len(failed.err.strip().splitlines()) == 1
    assert _store_state(mdl_home) == before
    assert not list((mdl_home / "store" / "ingest").iterdir())
