"""``mdl import ollama`` over an Ollama store the tests write from Ollama's published layout:
``manifests/<registry>/<namespace>/<model>/<tag>`` (Docker v2 schema 2 manifests whose layers are
``application/vnd.ollama.image.*``) and ``blobs/sha256-<hex>``."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_runner import MdlRunner
from runtime.serving import GO_TEMPLATE, Served

from mdl.spec.modelfile import Instruction, parse_modelfile
from mdl.spec.parameters import coerce_parameter

OLLAMA = "application/vnd.ollama.image."
SYSTEM = "You are terse.\nAnswer in one line."
PARAMS = b'{"num_ctx":256,"stop":["<|im_end|>","user:"],"temperature":0.7,"top_k":40}'
MESSAGES = b'[{"role":"user","content":"hello"},{"role":"assistant","content":"world"}]'
LICENSES = ("MIT License\n\nCopyright (c) tiny", "Apache-2.0")
TINY = "registry.ollama.ai/library/tiny:latest"
PLAIN = "localhost:11434/someone/plain:v1"


def _blob(root: Path, data: bytes, media_type: str) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    (root / "blobs" / f"sha256-{digest}").write_bytes(data)
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


def write_ollama_model(
    root: Path, name: tuple[str, str, str, str], parts: list[tuple[str, bytes]], **config: Any
) -> Path:
    """One model as Ollama stores it; ``parts`` are (part, content) in manifest order."""
    layers = [_blob(root, data, OLLAMA + part) for part, data in parts]
    doc = {
        "model_format": "gguf",
        "model_family": "llama",
        "model_families": ["llama"],
        "model_type": "1M",
        "file_type": "F32",
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in layers]},
        **config,
    }
    config_desc = _blob(
        root, json.dumps(doc).encode(), "application/vnd.docker.container.image.v1+json"
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": config_desc,
        "layers": layers,
    }
    path = root / "manifests" / Path(*name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest))
    return path


def _quote(text: str) -> str:
    """Ollama's parser.quote, as ``ollama show --modelfile`` writes values."""
    if "\n" in text or text.startswith(" ") or text.endswith(" "):
        return f'"""{text}"""' if '"' in text else f'"{text}"'
    return text


def ollama_show_modelfile(root: Path, manifest_path: Path) -> str:
    """What ``ollama show --modelfile`` prints for a model, by Ollama's rules (server/images.go
    ``Model.String``): FROM and ADAPTER name blob paths; no template layer means Ollama's
    default template; SYSTEM only when not empty; each parameter value printed as Go's %v."""
    manifest = json.loads(manifest_path.read_text())
    blobs = {}
    for layer in manifest["layers"]:
        path = root / "blobs" / layer["digest"].replace(":", "-")
        blobs.setdefault(layer["mediaType"].removeprefix(OLLAMA), []).append(path)
    config = json.loads(
        (root / "blobs" / manifest["config"]["digest"].replace(":", "-")).read_text()
    )
    lines = [f"FROM {blobs['model'][0]}"]
    lines += [f"ADAPTER {_quote(str(p))}" for p in blobs.get("adapter", [])]
    template = blobs["template"][0].read_text() if "template" in blobs else "{{ .Prompt }}"
    lines.append(f"TEMPLATE {_quote(template)}")
    system = blobs["system"][0].read_text() if "system" in blobs else ""
    if system:
        lines.append(f"SYSTEM {_quote(system)}")
    for command in ("renderer", "parser"):
        if config.get(command):
            lines.append(f"{command.upper()} {_quote(config[command])}")
    params = json.loads(blobs["params"][0].read_text()) if "params" in blobs else {}
    for key, value in params.items():
        for item in value if isinstance(value, list) else [value]:
            lines.append(
                f"PARAMETER {key} {_quote(str(item).lower() if item is True else str(item))}"
            )
    lines += [f"LICENSE {_quote(p.read_text())}" for p in blobs.get("license", [])]
    messages = json.loads(blobs["messages"][0].read_text()) if "messages" in blobs else []
    lines += [f"MESSAGE {m['role']} {_quote(m['content'])}" for m in messages]
    return "".join(line + "\n" for line in lines)


def _fields(text: str) -> list[tuple[str, str, Any]]:
    """(command, key, value) per instruction, blob paths and digests reduced to the hex, typed
    parameter values: the fields both Modelfiles must agree on."""

    def value(i: Instruction) -> Any:
        if i.command in ("from", "adapter"):
            return i.value.rsplit("/", 1)[-1].removeprefix("sha256-").removeprefix("sha256:")
        return coerce_parameter(i.key, i.value) if i.command == "parameter" else i.value

    return [(i.command, i.key, value(i)) for i in parse_modelfile(text).instructions]


@pytest.fixture
def ollama_dir(tmp_path: Path, models_dir: Path) -> Path:
    root = tmp_path / "ollama-models"
    write_ollama_model(
        root,
        ("registry.ollama.ai", "library", "tiny", "latest"),
        [
            ("model", (models_dir / "tiny.gguf").read_bytes()),
            ("adapter", (models_dir / "lora.gguf").read_bytes()),
            ("template", GO_TEMPLATE.encode()),
            ("system", SYSTEM.encode()),
            ("params", PARAMS),
            ("messages", MESSAGES),
            ("license", LICENSES[0].encode()),
            ("license", LICENSES[1].encode()),
        ],
    )
    write_ollama_model(
        root,
        ("localhost:11434", "someone", "plain", "v1"),
        [("model", (models_dir / "tiny-b.gguf").read_bytes())],
        renderer="qwen3-coder",
    )
    return root


def _manifest(root: Path, name: str) -> Path:
    host, rest = name.split("/", 1)
    namespace, model_tag = rest.split("/")
    model, tag = model_tag.split(":")
    return root / "manifests" / host / namespace / model / tag


def test_import_keeps_names_and_blobs_and_show_modelfile_matches_ollama(
    mdl: MdlRunner, mdl_home: Path, ollama_dir: Path
) -> None:
    report = mdl("import", "ollama", str(ollama_dir), "--json").json()
    models = {m["name"]: m for m in report["models"]}
    assert list(models) == [PLAIN, TINY]  # sorted by manifest path
    tiny = models[TINY]
    assert tiny["status"] == "imported" and tiny["error"] is None
    assert tiny["blobs"] == {"linked": 8, "copied": 0, "present": 0}
    assert models[PLAIN]["blobs"]["linked"] == 1
    assert {m["name"] for m in mdl("list", "--json").json()["models"]} == {TINY, PLAIN}
    for blob in (ollama_dir / "blobs").iterdir():
        stored = mdl_home / "store" / "blobs" / "sha256" / blob.name.removeprefix("sha256-")
        if stored.exists():  # every layer blob (Ollama's config stays Ollama's)
            assert os.stat(stored).st_ino == os.stat(blob).st_ino, blob.name
    shown = mdl("show", TINY, "--modelfile").out
    expected = ollama_show_modelfile(ollama_dir, _manifest(ollama_dir, TINY))
    assert _fields(shown) == _fields(expected)
    assert [f[0] for f in _fields(shown)] == [
        "from", "adapter", "template", "system", *["parameter"] * 5, "license", "license",
        "message", "message",
    ]  # fmt: skip
    plain = mdl("show", PLAIN, "--modelfile").out
    assert _fields(plain) == _fields(
        ollama_show_modelfile(ollama_dir, _manifest(ollama_dir, PLAIN))
    )
    assert ("template", "", "{{ .Prompt }}") in _fields(plain)
    assert ("renderer", "", "qwen3-coder") in _fields(plain)
    summary = mdl("show", TINY, "--json").json()
    assert summary["system"] == SYSTEM and summary["licenses"] == list(LICENSES)
    assert summary["parameters"] == json.loads(PARAMS)
    assert summary["messages"] == json.loads(MESSAGES)
    assert (summary["architecture"], summary["quantization"]) == ("llama", "F32")


def test_importing_again_changes_nothing(mdl: MdlRunner, ollama_dir: Path) -> None:
    first = mdl("import", "ollama", str(ollama_dir), "--json").json()["models"]
    again = mdl("import", "ollama", "--json", env={"OLLAMA_MODELS": str(ollama_dir)}).json()
    assert [m["digest"] for m in again["models"]] == [m["digest"] for m in first]
    assert {m["status"] for m in again["models"]} == {"unchanged"}
    assert again["models"][1]["blobs"] == {"linked": 0, "copied": 0, "present": 8}
    assert again["models"][1]["added"] == 0
    dry = mdl("import", "ollama", str(ollama_dir), "--dry-run").out
    assert dry.splitlines() == [f"would import {PLAIN}", f"would import {TINY}"]


def test_a_corrupt_blob_is_named_and_nothing_of_its_model_is_stored(
    mdl: MdlRunner, mdl_home: Path, ollama_dir: Path
) -> None:
    manifest = json.loads(_manifest(ollama_dir, TINY).read_text())
    adapter = next(la for la in manifest["layers"] if la["mediaType"] == OLLAMA + "adapter")
    bad = ollama_dir / "blobs" / adapter["digest"].replace(":", "-")
    data = bytearray(bad.read_bytes())
    data[-1] ^= 0xFF  # same size, other content
    bad.write_bytes(bytes(data))
    failed = mdl("import", "ollama", str(ollama_dir), ok=False)
    assert failed.code == 1
    assert f"{TINY}: {bad}: {adapter['digest']}: {OLLAMA}adapter: content is sha256:" in failed.err
    assert f"imported {PLAIN}" in failed.out
    assert [m["name"] for m in mdl("list", "--json").json()["models"]] == [PLAIN]
    stored = {p.name for p in (mdl_home / "store" / "blobs" / "sha256").iterdir()}
    for layer in manifest["layers"]:
        assert layer["digest"][7:] not in stored, layer["mediaType"]
    assert list((mdl_home / "store" / "ingest").iterdir()) == []
    bad.unlink()
    failed = mdl("import", "ollama", str(ollama_dir), ok=False)
    assert f"{TINY}: {bad}: {adapter['digest']}: blob missing" in failed.err


def test_a_model_layer_that_is_no_gguf_or_missing_fails_that_model_alone(
    mdl: MdlRunner, mdl_home: Path, ollama_dir: Path
) -> None:
    write_ollama_model(
        ollama_dir,
        ("registry.ollama.ai", "library", "junk", "latest"),
        [("template", b"{{ .Prompt }}"), ("model", b"not a gguf at all")],
    )
    write_ollama_model(
        ollama_dir, ("registry.ollama.ai", "library", "empty", "latest"), [("system", b"hi")]
    )
    failed = mdl("import", "ollama", str(ollama_dir), "--json", ok=False)
    assert failed.code == 1
    models = {m["name"]: m for m in failed.json()["models"]}
    junk = models["registry.ollama.ai/library/junk:latest"]
    bad = ollama_dir / "blobs" / f"sha256-{hashlib.sha256(b'not a gguf at all').hexdigest()}"
    assert junk["status"] == "failed"
    assert junk["error"].startswith(f"{bad}: not a GGUF file (magic")
    empty = models["registry.ollama.ai/library/empty:latest"]
    assert empty["error"] == "0 model layers: mdl takes one"
    assert {m["name"] for m in mdl("list", "--json").json()["models"]} == {TINY, PLAIN}
    stored = {p.name for p in (mdl_home / "store" / "blobs" / "sha256").iterdir()}
    assert hashlib.sha256(b"not a gguf at all").hexdigest() not in stored


@pytest.fixture
def other_fs(ollama_dir: Path) -> Iterator[Path]:
    """The Ollama store copied to /dev/shm, another file system than the test's MDL_HOME, where
    hard links cannot reach."""
    shm = Path("/dev/shm") / f"mdl-import-{uuid.uuid4().hex}"
    assert os.stat("/dev/shm").st_dev != os.stat(ollama_dir).st_dev
    shutil.copytree(ollama_dir, shm)
    yield shm
    shutil.rmtree(shm)


def test_across_file_systems_the_blobs_are_copied_and_verified(
    mdl: MdlRunner, mdl_home: Path, other_fs: Path
) -> None:
    models = mdl("import", "ollama", str(other_fs), "--json").json()["models"]
    assert models[1]["blobs"] == {"linked": 0, "copied": 8, "present": 0}
    for blob in (other_fs / "blobs").iterdir():
        stored = mdl_home / "store" / "blobs" / "sha256" / blob.name.removeprefix("sha256-")
        if stored.exists():
            assert os.stat(stored).st_ino != os.stat(blob).st_ino
            assert stored.read_bytes() == blob.read_bytes()


def test_an_imported_model_serves_as_its_modelfile_rebuilt_does(
    mdl: MdlRunner, tmp_path: Path, ollama_dir: Path, mdl_server: Served
) -> None:
    mdl("import", "ollama", str(ollama_dir))
    (tmp_path / "Modelfile").write_text(mdl("show", TINY, "--modelfile").out)
    mdl("build", "-q", "-t", "rebuilt", cwd=tmp_path)
    mdl_server.start()
    options = {"temperature": 0, "num_predict": 8}
    answers = []
    for model in (TINY, "rebuilt"):
        status, body = mdl_server.request(
            "POST",
            "/api/chat",
            {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": False,
             "options": options},
        )  # fmt: skip
        assert status == 200, body
        answers.append(body["message"]["content"])
    assert answers[0] and answers[0] == answers[1]
    status, body = mdl_server.request(
        "POST",
        "/api/generate",
        {"model": PLAIN, "prompt": "hi", "stream": False, "options": options},
    )
    assert status == 200 and body["eval_count"] == 8, body
