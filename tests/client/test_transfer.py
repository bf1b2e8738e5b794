"""push and pull through the real CLI against distribution 2.8: round trips, skips, auth."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import httpx
import oras.client
from cli_runner import MdlRunner
from client_registries import Registry
from servers import self_signed, start_mdl_registry

PASSWORD = "s3cret"


def _other_home(tmp_path: Path, name: str = "other") -> dict[str, str]:
    return {"MDL_HOME": str(tmp_path / name)}


def test_push_then_pull_round_trips_digests_and_files(
    mdl: MdlRunner, tiny_model: str, distribution: Registry, tmp_path: Path
) -> None:
    ref = f"{distribution.host}/demo/tiny:1.0"
    pushed = mdl("push", "tiny", ref, "--json").json()
    assert pushed["digest"] == tiny_model
    assert pushed["bytes_transferred"] > 489_280 and pushed["bytes_skipped"] == 0
    again = mdl("push", "tiny", ref, "--json").json()
    assert again["bytes_transferred"] == 0
    assert again["bytes_skipped"] == pushed["bytes_transferred"]
    other = _other_home(tmp_path)
    pulled = mdl("pull", ref, "--json", env=other).json()
    assert pulled["digest"] == tiny_model
    assert pulled["bytes_transferred"] == pushed["bytes_transferred"]
    listed = mdl("list", "--json", env=other).json()["models"]
    assert [(m["name"], m["digest"]) for m in listed] == [(ref, tiny_model)]
    here, there = mdl("show", "tiny", "--json").json(), mdl("show", ref, "--json", env=other).json()
    assert here["files"] == there["files"] and there["system"] == "Be brief."
    repull = mdl("pull", ref, "--json", env=other).json()
    assert repull["bytes_transferred"] == 0 and repull["bytes_skipped"] > 0


def test_pull_by_digest_verifies_and_keeps_the_digest_name(
    mdl: MdlRunner, tiny_model: str, distribution: Registry, tmp_path: Path
) -> None:
    mdl("push", "tiny", f"{distribution.host}/demo/bydigest:1")
    other = _other_home(tmp_path)
    ref = f"{distribution.host}/demo/bydigest@{tiny_model}"
    assert mdl("pull", ref, "-q", env=other).out.strip() == tiny_model
    assert [m["name"] for m in mdl("list", "--json", env=other).json()["models"]] == [ref]
    wrong = f"{distribution.host}/demo/bydigest@sha256:{'0' * 64}"
    failed = mdl("pull", wrong, env=other, ok=False)
    assert failed.code == 4 and "404" in failed.err


def test_local_names_need_a_default_registry(
    mdl: MdlRunner, tiny_model: str, distribution: Registry, tmp_path: Path
) -> None:
    failed = mdl("push", "tiny", ok=False)
    assert failed.code == 2 and "MDL_DEFAULT_REGISTRY" in failed.err
    default = {"MDL_DEFAULT_REGISTRY": distribution.host}
    mdl("push", "tiny", env=default)
    other = {**_other_home(tmp_path), **default}
    assert mdl("pull", "tiny", "-q", env=other).out.strip() == tiny_model


def test_pull_of_a_missing_model_is_a_clear_error(mdl: MdlRunner, distribution: Registry) -> None:
    failed = mdl("pull", f"{distribution.host}/demo/nosuch:1", ok=False)
    assert failed.code == 4
    assert failed.err.startswith("Error: ") and "demo/nosuch:1" in failed.err


def test_push_to_a_sibling_repository_mounts_every_blob(
    mdl: MdlRunner, tiny_model: str, distribution: Registry
) -> None:
    first = mdl("push", "tiny", f"{distribution.host}/team/a:1", "--json").json()
    second = mdl("push", "tiny", f"{distribution.host}/team/b:1", "--json").json()
    assert second["bytes_transferred"] == 0
    assert second["bytes_skipped"] == first["bytes_transferred"]


def test_auth_from_env_login_and_docker_config(
    mdl: MdlRunner, tiny_model: str, distribution_auth: Registry, tmp_path: Path, mdl_home: Path
) -> None:
    host = distribution_auth.host
    ref = f"{host}/private/tiny:1"
    denied = mdl("push", "tiny", ref, ok=False)
    assert denied.code == 3 and "401" in denied.err
    env = {"MDL_REGISTRY_USER": "alice", "MDL_REGISTRY_PASSWORD": PASSWORD}
    assert mdl("push", "tiny", ref, env=env, ok=False).code == 3  # not for this host
    mdl("push", "tiny", ref, env=env | {"MDL_REGISTRY_HOST": host})

    refused = mdl("login", host, "-u", "alice", "--password-stdin", stdin=b"wrong\n", ok=False)
    assert refused.code == 3 and "wrong" not in refused.err
    assert not (mdl_home / "auth.json").exists()
    login = mdl("login", host, "-u", "alice", "--password-stdin", stdin=f"{PASSWORD}\n".encode())
    assert PASSWORD not in login.out + login.err
    auth_file = mdl_home / "auth.json"
    assert stat.S_IMODE(auth_file.stat().st_mode) == 0o600
    assert mdl("pull", ref, "-q", env=_other_home(tmp_path) | {"MDL_HOME": str(mdl_home)}).code == 0
    mdl("logout", host)
    assert host not in json.loads(auth_file.read_text())["auths"]
    assert mdl("pull", ref, ok=False).code == 3

    docker = tmp_path / "docker"
    docker.mkdir()
    (docker / "config.json").write_text(
        json.dumps({"auths": {host: {"auth": "YWxpY2U6czNjcmV0"}}})  # alice:s3cret
    )
    assert mdl("pull", ref, "-q", env={"DOCKER_CONFIG": str(docker)}).out.strip() == tiny_model


def test_docker_credential_helper_is_asked(
    mdl: MdlRunner, tiny_model: str, distribution_auth: Registry, tmp_path: Path
) -> None:
    ref = f"{distribution_auth.host}/private/helper:1"
    env = {"MDL_REGISTRY_USER": "alice", "MDL_REGISTRY_PASSWORD": PASSWORD}
    mdl("push", "tiny", ref, env=env | {"MDL_REGISTRY_HOST": distribution_auth.host})
    bin_dir, docker = tmp_path / "bin", tmp_path / "docker"
    bin_dir.mkdir()
    docker.mkdir()
    helper = bin_dir / "docker-credential-mdltest"
    helper.write_text(
        "#!/bin/sh\nread server\n"
        f'[ "$server" = "{distribution_auth.host}" ] || exit 1\n'
        f'echo \'{{"Username": "alice", "Secret": "{PASSWORD}"}}\'\n'
    )
    helper.chmod(0o755)
    (docker / "config.json").write_text(json.dumps({"credsStore": "mdltest"}))
    env = {
        "DOCKER_CONFIG": str(docker),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        **_other_home(tmp_path),
    }
    assert mdl("pull", ref, "-q", env=env).out.strip() == tiny_model


def test_a_registry_serving_a_corrupt_blob_is_caught(
    mdl: MdlRunner, tiny_model: str, distribution: Registry, tmp_path: Path
) -> None:
    ref = f"{distribution.host}/demo/corrupt:1"
    mdl("push", "tiny", ref)
    weights = mdl("show", "tiny", "--json").json()["files"]["model.gguf"].removeprefix("sha256:")
    data = distribution.blob_file(weights)
    original = data.read_bytes()
    data.write_bytes(original[:-1] + bytes([original[-1] ^ 0xFF]))
    try:
        other = _other_home(tmp_path)
        failed = mdl("pull", ref, env=other, ok=False)
        assert failed.code == 1 and "digest" in failed.err
        home = tmp_path / "other" / "store"
        assert not (home / "blobs" / "sha256" / weights).exists()
        assert json.loads((home / "index.json").read_text())["manifests"] == []
    finally:
        data.write_bytes(original)
    assert mdl("pull", ref, "-q", env=other).out.strip() == tiny_model


def test_oras_reads_what_mdl_pushed_and_mdl_reads_what_oras_pushed(
    mdl: MdlRunner, tiny_model: str, distribution: Registry, tmp_path: Path
) -> None:
    ref = f"{distribution.host}/interop/tiny:1"
    mdl("push", "tiny", ref)
    client = oras.client.OrasClient(hostname=distribution.host, insecure=True)
    manifest = client.get_manifest(ref)
    assert manifest["artifactType"] == "application/vnd.cncf.model.manifest.v1+json"
    assert {layer["digest"] for layer in manifest["layers"]} == set(
        mdl("show", "tiny", "--json").json()["files"].values()
    )
    for layer in manifest["layers"]:  # oras-py does not verify digests: check each one here
        out = tmp_path / layer["digest"].removeprefix("sha256:")
        client.download_blob(f"{distribution.host}/interop/tiny", layer["digest"], str(out))
        assert "sha256:" + hashlib.sha256(out.read_bytes()).hexdigest() == layer["digest"]

    artifact = tmp_path / "weights.bin"
    artifact.write_bytes(os.urandom(4096))
    oras_ref = f"{distribution.host}/interop/from-oras:1"
    client.push(target=oras_ref, files=[str(artifact)], disable_path_validation=True)
    raw = httpx.get(
        f"http://{distribution.host}/v2/interop/from-oras/manifests/1",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    ).content
    pulled = mdl("pull", oras_ref, "--json", env=_other_home(tmp_path)).json()
    assert pulled["digest"] == "sha256:" + hashlib.sha256(raw).hexdigest()
    blobs = tmp_path / "other" / "store" / "blobs" / "sha256"
    assert (blobs / hashlib.sha256(artifact.read_bytes()).hexdigest()).exists()


def test_push_and_pull_over_tls(mdl: MdlRunner, tiny_model: str, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    args = ("--tls-cert", str(cert), "--tls-key", str(key))
    with start_mdl_registry(tmp_path / "root", *args) as server:
        assert server.url.startswith("https://")
        ref = f"{server.host}/secure/tiny:1"
        mdl("push", "tiny", ref)
        env = {**_other_home(tmp_path), "MDL_CA_BUNDLE": str(cert)}
        assert mdl("pull", ref, "-q", env=env).out.strip() == tiny_model
