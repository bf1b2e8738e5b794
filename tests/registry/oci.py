"""Building and pushing OCI content over raw HTTP, for the registry tests."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"


def digest(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def descriptor(media_type: str, content: bytes, **extra: Any) -> dict[str, Any]:
    algorithm = extra.pop("algorithm", "sha256")
    return {
        "mediaType": media_type,
        "digest": digest(content, algorithm),
        "size": len(content),
        **extra,
    }


def encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def push_blob(client: httpx.Client, repo: str, data: bytes, algorithm: str = "sha256") -> str:
    """Monolithic POST ?digest=; returns the digest."""
    dgst = digest(data, algorithm)
    response = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": dgst}, content=data)
    assert response.status_code == 201, response.text
    return dgst


def push_manifest(
    client: httpx.Client,
    repo: str,
    reference: str | None,
    document: dict[str, Any] | bytes,
    media_type: str | None = None,
    algorithm: str = "sha256",
) -> httpx.Response:
    body = document if isinstance(document, bytes) else encode(document)
    if media_type is None and isinstance(document, dict):
        media_type = document.get("mediaType")
    headers = {"Content-Type": media_type} if media_type else {}
    ref = reference or digest(body, algorithm)
    return client.put(f"/v2/{repo}/manifests/{ref}", content=body, headers=headers)


def image(
    client: httpx.Client,
    repo: str,
    tag: str | None = "latest",
    *,
    layers: int = 2,
    algorithm: str = "sha256",
    **manifest_fields: Any,
) -> tuple[str, bytes]:
    """Push a small image (config and random layers) and its manifest; (digest, bytes)."""
    config = encode({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}})
    push_blob(client, repo, config, algorithm)
    layer_descs = []
    for _ in range(layers):
        data = os.urandom(300)
        push_blob(client, repo, data, algorithm)
        layer_descs.append(descriptor(OCI_LAYER, data, algorithm=algorithm))
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config, algorithm=algorithm),
        "layers": layer_descs,
        **manifest_fields,
    }
    body = encode(manifest)
    response = push_manifest(client, repo, tag, body, OCI_MANIFEST, algorithm)
    assert response.status_code == 201, response.text
    return digest(body, algorithm), body


def artifact(
    client: httpx.Client,
    repo: str,
    tag: str | None,
    artifact_type: str,
    *,
    subject: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
) -> tuple[str, bytes, httpx.Response]:
    """An OCI 1.1 artifact: empty config, one layer, optional subject."""
    push_blob(client, repo, b"{}")
    layer = os.urandom(64)
    push_blob(client, repo, layer)
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": descriptor(OCI_EMPTY, b"{}"),
        "layers": [descriptor("application/octet-stream", layer)],
    }
    if subject:
        manifest["subject"] = subject
    if annotations:
        manifest["annotations"] = annotations
    body = encode(manifest)
    response = push_manifest(client, repo, tag, body, OCI_MANIFEST)
    return digest(body), body, response


def errors(response: httpx.Response) -> list[str]:
    """The error codes of a spec error envelope."""
    assert response.headers["content-type"].startswith("application/json"), response.headers
    return [e["code"] for e in response.json()["errors"]]
