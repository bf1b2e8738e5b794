"""Real clients against ``mdl registry serve``: oras-py (push, pull, chunked, tags, delete,
subject) and skopeo (an OCI layout copied in and back, digests unchanged)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import httpx
import oras.client
import oras.oci
import pytest
from oci import OCI_EMPTY, OCI_MANIFEST, descriptor, encode
from servers import RunningServer


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """oras-py refuses files outside the working directory and writes ~/.docker: keep both here."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def test_oras_push_pull_custom_types_and_annotations(
    registry: RunningServer, repo: str, workdir: Path
) -> None:
    model = workdir / "model.gguf"
    model.write_bytes(b"GGUF" + os.urandom(256 * 1024 + 11))
    (workdir / "config.json").write_text(json.dumps({"format": "gguf"}))
    client = oras.client.OrasClient(hostname=registry.host, insecure=True)
    target = f"{registry.host}/{repo}:custom"
    response = client.push(
        files=["model.gguf:application/vnd.example.gguf"],
        target=target,
        manifest_config="config.json:application/vnd.example.model.config.v1+json",
        manifest_annotations={"org.example.quant": "Q4_K_M"},
        quiet=True,
    )
    assert response.status_code == 201
    manifest = client.get_manifest(target)
    assert manifest["layers"][0]["mediaType"] == "application/vnd.example.gguf"
    assert manifest["annotations"]["org.example.quant"] == "Q4_K_M"
    pulled = client.pull(target=target, outdir=str(workdir / "out"))
    assert sha256_file(Path(pulled[0])) == sha256_file(model)


def test_oras_chunked_push_tags_and_delete(
    registry: RunningServer, repo: str, workdir: Path
) -> None:
    blob = workdir / "chunked.bin"
    blob.write_bytes(os.urandom(3 * 1024 * 1024 + 7))
    client = oras.client.OrasClient(hostname=registry.host, insecure=True)
    target = f"{registry.host}/{repo}"
    response = client.push(
        files=["chunked.bin"],
        target=f"{target}:chunked",
        do_chunked=True,
        chunk_size=1024 * 1024,
        quiet=True,
    )
    assert response.status_code == 201
    pulled = client.pull(target=f"{target}:chunked", outdir=str(workdir / "out"))
    assert sha256_file(Path(pulled[0])) == sha256_file(blob)
    (workdir / "other.bin").write_bytes(b"other")
    client.push(files=["other.bin"], target=f"{target}:second", quiet=True)
    assert sorted(client.get_tags(target)) == ["chunked", "second"]
    client.delete_tag(target, "chunked")  # oras-py deletes the manifest the tag names
    assert client.get_tags(target) == ["second"]


def test_oras_push_with_subject(registry: RunningServer, repo: str, workdir: Path) -> None:
    (workdir / "a.txt").write_text("artifact")
    (workdir / "sig.txt").write_text("signature")
    client = oras.client.OrasClient(hostname=registry.host, insecure=True)
    target = f"{registry.host}/{repo}"
    client.push(files=["a.txt"], target=f"{target}:v1", quiet=True)
    manifest = client.get_manifest(f"{target}:v1")
    subject = oras.oci.Subject.from_manifest(manifest)
    response = client.push(files=["sig.txt"], target=f"{target}:sig", subject=subject, quiet=True)
    assert response.status_code == 201
    assert response.headers["OCI-Subject"] == subject.digest
    with httpx.Client(base_url=registry.url) as http:
        referrers = http.get(f"/v2/{repo}/referrers/{subject.digest}").json()["manifests"]
    assert len(referrers) == 1


def write_layout(directory: Path, artifact_type: bool) -> str:
    """An OCI image layout with one model-style artifact; returns its manifest digest."""
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> None:
        (blobs / hashlib.sha256(data).hexdigest()).write_bytes(data)

    layer = b"GGUF" + os.urandom(65536)
    put(layer)
    manifest: dict[str, object] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST}
    if artifact_type:
        put(b"{}")
        manifest["artifactType"] = "application/vnd.example.model.v1"
        manifest["config"] = descriptor(OCI_EMPTY, b"{}")
    else:
        config = encode({"format": "gguf"})
        put(config)
        manifest["config"] = descriptor("application/vnd.example.model.config.v1+json", config)
    manifest["layers"] = [
        descriptor(
            "application/vnd.example.gguf",
            layer,
            annotations={"org.opencontainers.image.title": "model.gguf"},
        )
    ]
    body = encode(manifest)
    put(body)
    entry = {
        **descriptor(OCI_MANIFEST, body),
        "annotations": {"org.opencontainers.image.ref.name": "v1"},
    }
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json"}
    (directory / "index.json").write_text(json.dumps({**index, "manifests": [entry]}))
    (directory / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return "sha256:" + hashlib.sha256(body).hexdigest()


@pytest.mark.parametrize("artifact_type", [False, True], ids=["custom-config", "empty-config"])
def test_skopeo_copies_a_layout_in_and_back(
    registry: RunningServer, repo: str, tmp_path: Path, artifact_type: bool
) -> None:
    source, back = tmp_path / "src", tmp_path / "back"
    want = write_layout(source, artifact_type)
    ref = f"docker://{registry.host}/{repo}:v1"
    skopeo = ["skopeo", "--insecure-policy"]
    subprocess.run(
        [*skopeo, "copy", "--dest-tls-verify=false", f"oci:{source}:v1", ref],
        check=True,
        capture_output=True,
    )
    raw = subprocess.run(
        [*skopeo, "inspect", "--raw", "--tls-verify=false", ref], check=True, capture_output=True
    ).stdout
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == want
    subprocess.run(
        [*skopeo, "copy", "--src-tls-verify=false", ref, f"oci:{back}:v1"],
        check=True,
        capture_output=True,
    )
    assert sorted(os.listdir(source / "blobs" / "sha256")) == sorted(
        os.listdir(back / "blobs" / "sha256")
    )
