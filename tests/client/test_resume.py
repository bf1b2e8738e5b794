"""Interrupted transfers resume: a killed pull, a killed push, a registry restarted mid-push,
and two pulls of the same model at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_runner import MdlRunner
from client_registries import Registry
from ggufs import write_padded_llama

BIG_MIB = 256


@pytest.fixture(scope="module")
def big_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "big.gguf"
    write_padded_llama(path, BIG_MIB)
    return path


@pytest.fixture
def big_model(mdl: MdlRunner, big_gguf: Path, tmp_path: Path) -> str:
    (tmp_path / "Modelfile").write_text(f"FROM {big_gguf}\n")
    return mdl("build", "-q", "-t", "big", cwd=tmp_path).out.strip()


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "mdl.cli", *args],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait_until(process: subprocess.Popen[bytes], ready: Callable[[], bool]) -> None:
    """Poll ``ready`` while ``process`` runs; fail if it ends first or a minute passes."""
    deadline = time.monotonic() + 60
    while not ready():
        assert process.poll() is None, "the transfer finished before the moment came"
        assert time.monotonic() < deadline, "the moment never came"
        time.sleep(0.002)


def _kill_when(process: subprocess.Popen[bytes], ready: Callable[[], bool]) -> None:
    _wait_until(process, ready)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the transfer finished before it was killed"


def _partial_bytes(home: Path) -> int:
    ingest = home / "store" / "ingest"
    total = 0
    for partial in ingest.glob("*.partial") if ingest.exists() else ():
        try:
            # allocated, not apparent, size: ranges are written in parallel, so it is sparse
            total += partial.stat().st_blocks * 512
        except FileNotFoundError:
            continue  # completed between the listing and the stat
    return total


def test_killed_pull_resumes_where_it_stopped(
    mdl: MdlRunner, big_model: str, distribution: Registry, tmp_path: Path
) -> None:
    ref = f"{distribution.host}/resume/big:1"
    mdl("push", "big", ref)
    home = tmp_path / "puller"
    env = {"MDL_HOME": str(home)}
    pulling = _start(["pull", ref], env)
    _kill_when(pulling, lambda: _partial_bytes(home) > 64 * 1024 * 1024)
    assert not list((home / "store" / "blobs" / "sha256").iterdir()) or all(
        p.stat().st_size < 1024 * 1024 for p in (home / "store" / "blobs" / "sha256").iterdir()
    )
    assert json.loads((home / "store" / "index.json").read_text())["manifests"] == []
    resumed = mdl("pull", ref, "--json", env=env).json()
    assert resumed["digest"] == big_model
    assert resumed["bytes_skipped"] >= 32 * 1024 * 1024
    assert resumed["bytes_transferred"] < BIG_MIB * 1024 * 1024
    assert not list((home / "store" / "ingest").glob("*.partial"))
    weights = mdl("show", ref, "--json", env=env).json()["files"]["model.gguf"]
    assert weights == mdl("show", "big", "--json").json()["files"]["model.gguf"]


def test_killed_push_resumes_on_mdls_registry(
    mdl: MdlRunner, big_model: str, mdl_registry: Registry, mdl_home: Path
) -> None:
    """mdl's registry keeps every byte a cut PATCH delivered and says so in ``Range``: the
    rerun continues from there."""
    ref = f"{mdl_registry.host}/resume/pushed:1"
    env = {"MDL_CHUNK_SIZE": str(16 * 1024 * 1024)}
    uploads = mdl_home / "uploads"
    pushing = _start(["push", "big", ref], {**env, "MDL_HOME": str(mdl_home)})
    _kill_when(pushing, lambda: any(uploads.glob("*.json")) if uploads.exists() else False)
    resumed = mdl("push", "big", ref, "--json", env=env).json()
    assert resumed["digest"] == big_model
    assert 0 < resumed["bytes_transferred"] < BIG_MIB * 1024 * 1024  # the blob is larger
    assert not list(uploads.glob("*.json"))
    check = {"MDL_HOME": str(mdl_home / "check")}
    assert mdl("pull", ref, "-q", env=check).out.strip() == big_model


def test_killed_push_completes_when_run_again(
    mdl: MdlRunner, big_model: str, distribution: Registry, mdl_home: Path
) -> None:
    """distribution 2.8 forgets an upload whose PATCH was cut mid-body (its state token no
    longer matches the bytes it kept): the rerun asks, is told 404, and starts over; cut
    between two chunks, it continues from the registry's offset."""
    ref = f"{distribution.host}/resume/pushed:1"
    env = {"MDL_CHUNK_SIZE": str(16 * 1024 * 1024)}
    uploads = mdl_home / "uploads"
    pushing = _start(["push", "big", ref], {**env, "MDL_HOME": str(mdl_home)})
    _kill_when(pushing, lambda: any(uploads.glob("*.json")) if uploads.exists() else False)
    resumed = mdl("push", "big", ref, "--json", env=env).json()
    assert resumed["digest"] == big_model
    assert resumed["bytes_transferred"] + resumed["bytes_skipped"] > BIG_MIB * 1024 * 1024
    assert not list(uploads.glob("*.json"))
    assert mdl("pull", ref, "-q", env={"MDL_HOME": str(mdl_home / "check")}).out.strip() == (
        big_model
    )


def test_push_survives_a_registry_restart(
    mdl: MdlRunner, big_model: str, distribution: Registry, mdl_home: Path
) -> None:
    ref = f"{distribution.host}/resume/restart:1"
    env = {"MDL_CHUNK_SIZE": str(16 * 1024 * 1024), "MDL_HOME": str(mdl_home)}
    uploads = mdl_home / "uploads"
    pushing = _start(["push", "big", ref], env)
    _wait_until(pushing, lambda: uploads.exists() and any(uploads.glob("*.json")))
    distribution.restart()
    assert pushing.wait(timeout=120) == 0
    assert mdl("pull", ref, "-q", env={"MDL_HOME": str(mdl_home / "check")}).out.strip() == (
        big_model
    )


def test_two_pulls_of_the_same_model_at_once(
    mdl: MdlRunner, big_model: str, distribution: Registry, tmp_path: Path
) -> None:
    ref = f"{distribution.host}/resume/twice:1"
    mdl("push", "big", ref)
    env = {"MDL_HOME": str(tmp_path / "shared")}
    pulls = [_start(["pull", ref], env) for _ in range(2)]
    assert [p.wait(timeout=120) for p in pulls] == [0, 0]
    store = tmp_path / "shared" / "store"
    assert not list((store / "ingest").glob("*.partial"))
    assert mdl("show", ref, "--json", env=env).json()["digest"] == big_model
    sizes = sorted(p.stat().st_size for p in (store / "blobs" / "sha256").iterdir())
    assert sizes[-1] > BIG_MIB * 1024 * 1024
