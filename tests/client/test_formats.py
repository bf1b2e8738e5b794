"""Ollama's and Docker Model Runner's formats across the wire: push in them, pull from them.

Neither Ollama nor Docker Model Runner runs here; their sides are the manifests, configs and
media types they publish, checked byte for byte or written by hand from their documented form.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
from cli_runner import MdlRunner
from client_registries import Registry

OCI = "application/vnd.oci.image.manifest.v1+json"
DOCKER_V2 = "application/vnd.docker.distribution.manifest.v2+json"


def _raw_manifest(registry: Registry, name: str, tag: str) -> dict[str, Any]:
    answer = httpx.get(
        f"http://{registry.host}/v2/{name}/manifests/{tag}",
        headers={"Accept": f"{OCI}, {DOCKER_V2}"},
    )
    assert answer.status_code == 200
    doc: dict[str, Any] = answer.json()
    return doc


def _put_blob(registry: Registry, name: str, data: bytes) -> dict[str, Any]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    start = httpx.post(f"http://{registry.host}/v2/{name}/blobs/uploads/")
    location = httpx.URL(f"http://{registry.host}").join(start.headers["Location"])
    done = httpx.put(location.copy_merge_params({"digest": digest}), content=data)
    assert done.status_code == 201
    return {"digest": digest, "size": len(data)}


def test_push_as_ollama_then_pull_back(
    mdl: MdlRunner, tiny_model: str, distribution: Registry, tmp_path: Path
) -> None:
    ref = f"{distribution.host}/formats/ollama:1"
    mdl("push", "tiny", ref, "--format", "ollama")
    manifest = _raw_manifest(distribution, "formats/ollama", "1")
    assert manifest["mediaType"] == DOCKER_V2
    assert manifest["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"
    kinds = [layer["mediaType"] for layer in manifest["layers"]]
    assert kinds == [
        "application/vnd.ollama.image.model",
        "application/vnd.ollama.image.adapter",
        "application/vnd.ollama.image.template",
        "application/vnd.ollama.image.system",
        "application/vnd.ollama.image.params",
    ]
    here = mdl("show", "tiny", "--json").json()
    by_path = here["files"]
    assert [layer["digest"] for layer in manifest["layers"]] == [
        by_path["model.gguf"],
        by_path[here["adapters"][0]],
        by_path["template"],
        by_path["system.txt"],
        by_path["params.json"],
    ]
    other = {"MDL_HOME": str(tmp_path / "other")}
    mdl("pull", ref, env=other)
    there = mdl("show", ref, "--json", env=other).json()
    for key in (
        "system",
        "parameters",
        "template",
        "template_format",
        "adapters",
        "architecture",
        "context_length",
        "quantization",
    ):
        assert there[key] == here[key], key
    assert {k: v for k, v in there["files"].items()} == {
        k: v for k, v in by_path.items() if k != "Modelfile"
    }


def test_push_as_docker_model_runner_round_trips_to_the_same_digest(
    mdl: MdlRunner, tiny_model: str, distribution: Registry, tmp_path: Path
) -> None:
    ref = f"{distribution.host}/formats/docker:1"
    mdl("push", "tiny", ref, "--format", "docker")
    manifest = _raw_manifest(distribution, "formats/docker", "1")
    assert manifest["mediaType"] == OCI
    assert manifest["config"]["mediaType"] == "application/vnd.docker.ai.model.config.v0.2+json"
    kinds = {
        layer["annotations"]["org.cncf.model.filepath"]: layer["mediaType"]
        for layer in manifest["layers"]
    }
    assert kinds["model.gguf"] == "application/vnd.docker.ai.gguf.v3"
    assert kinds["template"] == "application/vnd.docker.ai.chat.template.jinja"
    assert kinds["system.txt"] == kinds["Modelfile"] == "application/vnd.docker.ai.model.file"
    config = json.loads(
        httpx.get(
            f"http://{distribution.host}/v2/formats/docker/blobs/{manifest['config']['digest']}"
        ).content
    )
    assert config["config"]["format"] == "gguf" and config["config"]["architecture"] == "llama"
    other = {"MDL_HOME": str(tmp_path / "other")}
    mdl("pull", ref, env=other)
    assert mdl("show", ref, "--json", env=other).json()["digest"] == tiny_model


def test_pull_a_model_published_in_ollamas_format(
    mdl: MdlRunner, distribution: Registry, models_dir: Path, tmp_path: Path
) -> None:
    name = "library/tiny-ollama"
    weights = _put_blob(distribution, name, (models_dir / "tiny.gguf").read_bytes())
    template = _put_blob(distribution, name, b"{{ .System }} {{ .Prompt }}")
    params = _put_blob(distribution, name, b'{"stop":["\\u003c/s\\u003e"],"temperature":0.5}\n')
    license_ = _put_blob(distribution, name, b"MIT License")
    config = _put_blob(distribution, name, json.dumps({"model_format": "gguf"}).encode())
    layers = [
        {"mediaType": f"application/vnd.ollama.image.{kind}", **blob}
        for kind, blob in (
            ("model", weights),
            ("template", template),
            ("license", license_),
            ("params", params),
        )
    ]
    manifest = {
        "schemaVersion": 2,
        "mediaType": DOCKER_V2,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", **config},
        "layers": layers,
    }
    put = httpx.put(
        f"http://{distribution.host}/v2/{name}/manifests/latest",
        content=json.dumps(manifest),
        headers={"Content-Type": DOCKER_V2},
    )
    assert put.status_code == 201
    mdl("pull", f"{distribution.host}/{name}")
    shown = mdl("show", f"{distribution.host}/{name}", "--json").json()
    assert shown["template"] == "{{ .System }} {{ .Prompt }}" and shown["template_format"] == "go"
    assert shown["parameters"] == {"stop": ["</s>"], "temperature": 0.5}
    assert shown["licenses"] == ["MIT License"]
    assert shown["files"]["model.gguf"] == weights["digest"]
    assert (shown["architecture"], shown["context_length"]) == ("llama", 512)
    modelfile = mdl("show", f"{distribution.host}/{name}", "--modelfile").out
    assert modelfile.startswith(f"FROM {weights['digest']}")


def test_pull_a_model_published_by_docker_model_runner_v01(
    mdl: MdlRunner, distribution: Registry, models_dir: Path
) -> None:
    name = "ai/tiny"
    weights = _put_blob(distribution, name, (models_dir / "tiny.gguf").read_bytes())
    template = _put_blob(distribution, name, b"{% for m in messages %}{{ m.content }}{% endfor %}")
    license_ = _put_blob(distribution, name, b"Apache-2.0")
    body = {
        "config": {"format": "gguf", "quantization": "F32", "parameters": "120K"},
        "descriptor": {},
        "rootfs": {"type": "rootfs", "diff_ids": [weights["digest"]]},
    }
    config = _put_blob(distribution, name, json.dumps(body).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI,
        "config": {"mediaType": "application/vnd.docker.ai.model.config.v0.1+json", **config},
        "layers": [
            {"mediaType": "application/vnd.docker.ai.gguf.v3", **weights},
            {"mediaType": "application/vnd.docker.ai.license", **license_},
            {"mediaType": "application/vnd.docker.ai.chat.template.jinja", **template},
        ],
    }
    put = httpx.put(
        f"http://{distribution.host}/v2/{name}/manifests/v1",
        content=json.dumps(manifest),
        headers={"Content-Type": OCI},
    )
    assert put.status_code == 201
    ref = f"{distribution.host}/{name}:v1"
    mdl("pull", ref)
    shown = mdl("show", ref, "--json").json()
    assert shown["template_format"] == "jinja" and shown["licenses"] == ["Apache-2.0"]
    assert list(shown["files"]) == ["model.gguf", "template", "LICENSE"]
