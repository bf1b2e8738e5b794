"""Registry mirrors (``MDL_REGISTRY_MIRRORS``, ``$MDL_HOME/mirrors.toml``): tried in order before
the registry, each falling through on failure, against real registries on 127.0.0.1: one down,
one lacking the model, one serving a corrupt blob, one holding it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_runner import MdlRunner
from client_registries import Registry
from servers import RunningServer, free_port, start_mdl_registry

from mdl.client import mirrors
from mdl.client.credentials import DOCKER_HUB
from mdl.client.mirrors import MirrorConfigError, Source

REF = "demo/tiny:1"


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with start_mdl_registry(tmp_path_factory.mktemp("origin")) as server:
        yield server


@pytest.fixture(scope="module")
def lacking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A mirror that has never seen the model."""
    with start_mdl_registry(tmp_path_factory.mktemp("lacking")) as server:
        yield server


def down() -> str:
    """A mirror nothing answers on."""
    return f"127.0.0.1:{free_port()}"


def manifest_gets(server: RunningServer) -> list[int]:
    """The statuses of the manifest GETs of ``REF`` in the server's access log."""
    statuses = []
    for line in server.log().splitlines():
        if line.startswith("{") and '"path"' in line:
            entry = json.loads(line)
            if entry["method"] == "GET" and entry["path"] == "/v2/demo/tiny/manifests/1":
                statuses.append(entry["status"])
    return statuses


def pulled_digest(mdl: MdlRunner, ref: str, home: Path, env: dict[str, str]) -> str:
    return mdl("pull", ref, "-q", env={"MDL_HOME": str(home), **env}).out.strip()


def test_a_mirror_down_and_one_lacking_fall_through_to_the_registry(
    mdl: MdlRunner, tiny_model: str, origin: RunningServer, lacking: RunningServer, tmp_path: Path
) -> None:
    mdl("push", "tiny", f"{origin.host}/{REF}")
    before = len(manifest_gets(origin))
    pairs = f"{origin.host}={down()}, {origin.host}=http://{lacking.host}"
    home = tmp_path / "other"
    digest = pulled_digest(mdl, f"{origin.host}/{REF}", home, {mirrors.ENV: pairs})
    assert digest == tiny_model
    assert manifest_gets(lacking)[-1] == 404  # asked, in order, and had nothing
    assert manifest_gets(origin)[before:] == [200]
    listed = mdl("list", "--json", env={"MDL_HOME": str(home)}).json()["models"]
    assert [m["name"] for m in listed] == [f"{origin.host}/{REF}"]


def test_a_mirror_that_holds_the_model_serves_it_while_the_registry_is_down(
    mdl: MdlRunner, tiny_model: str, lacking: RunningServer, tmp_path: Path
) -> None:
    mdl("push", "tiny", f"{lacking.host}/{REF}")  # now this mirror has it
    gone = down()
    home = tmp_path / "other"
    env = {mirrors.ENV: f"{gone}={lacking.host}"}
    assert pulled_digest(mdl, f"{gone}/{REF}", home, env) == tiny_model
    listed = mdl("list", "--json", env={"MDL_HOME": str(home)}).json()["models"]
    assert [m["name"] for m in listed] == [f"{gone}/{REF}"]  # named as asked, not the mirror


def test_a_mirror_serving_a_corrupt_blob_is_caught_and_passed_over(
    mdl: MdlRunner,
    tiny_model: str,
    origin: RunningServer,
    distribution: Registry,
    tmp_path: Path,
) -> None:
    mdl("push", "tiny", f"{origin.host}/{REF}")
    mdl("push", "tiny", f"{distribution.host}/{REF}")
    weights = mdl("show", "tiny", "--json").json()["files"]["model.gguf"]
    data = distribution.blob_file(weights)
    original = data.read_bytes()
    data.write_bytes(original[:-1] + bytes([original[-1] ^ 0xFF]))
    try:
        home = tmp_path / "other"
        env = {"MDL_HOME": str(home), mirrors.ENV: f"{origin.host}={distribution.host}"}
        pulled = mdl("pull", f"{origin.host}/{REF}", "--json", env=env).json()
        assert pulled["digest"] == tiny_model
        assert pulled["bytes_skipped"] > 0  # the mirror's sound blobs were kept
        stored = home / "store" / "blobs" / "sha256" / weights.removeprefix("sha256:")
        assert f"sha256:{hashlib.sha256(stored.read_bytes()).hexdigest()}" == weights
    finally:
        data.write_bytes(original)


def test_the_mirrors_file_is_read_when_the_variable_is_unset(
    mdl: MdlRunner,
    tiny_model: str,
    origin: RunningServer,
    lacking: RunningServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(mirrors.ENV, raising=False)
    mdl("push", "tiny", f"{origin.host}/{REF}")
    home = tmp_path / "other"
    home.mkdir()
    (home / "mirrors.toml").write_text(
        f'[[mirror]]\nregistry = "{origin.host}"\nmirror = "{down()}"\n\n'
        f'[[mirror]]\nregistry = "{origin.host}"\nmirror = "{lacking.host}"\n'
    )
    asked = len(manifest_gets(lacking))
    assert pulled_digest(mdl, f"{origin.host}/{REF}", home, {}) == tiny_model
    assert len(manifest_gets(lacking)) > asked


def test_every_source_failing_reports_the_registry_and_each_mirror(
    mdl: MdlRunner, tmp_path: Path
) -> None:
    origin, mirror = down(), down()
    failed = mdl(
        "pull",
        f"{origin}/{REF}",
        env={"MDL_HOME": str(tmp_path / "other"), mirrors.ENV: f"{origin}={mirror}"},
        ok=False,
    )
    assert failed.code != 0
    assert f"mirror {mirror}" in failed.err and origin in failed.err


def test_pairs_keep_their_order_and_docker_io_names_docker_hub(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        mirrors.ENV,
        "docker.io=m1:5000, other:1=m9 ,docker.io=https://m2/,index.docker.io=http://m3",
    )
    assert mirrors.sources("docker.io") == [
        Source("m1:5000", retries=mirrors.MIRROR_RETRIES),
        Source("m2", retries=mirrors.MIRROR_RETRIES),
        Source("m3", insecure=True, retries=mirrors.MIRROR_RETRIES),
        Source(DOCKER_HUB),
    ]
    assert mirrors.sources("nowhere:5000", insecure=True) == [Source("nowhere:5000", True)]


@pytest.mark.parametrize("text", ["docker.io", "docker.io=", "=m1", "docker.io=m1/path", "a b=m"])
def test_a_malformed_pair_is_refused_by_name(text: str) -> None:
    with pytest.raises(MirrorConfigError, match="MDL_REGISTRY_MIRRORS"):
        mirrors.parse_pairs(text)


def test_a_malformed_file_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "mirrors.toml"
    path.write_text('[[mirror]]\nregistry = "docker.io"\n')
    with pytest.raises(MirrorConfigError, match="mirror 1: needs registry and mirror"):
        mirrors.parse_file(path)
    path.write_text("mirror = 3\n")
    with pytest.raises(MirrorConfigError, match="array of tables"):
        mirrors.parse_file(path)
    assert mirrors.parse_file(tmp_path / "missing.toml") == []
