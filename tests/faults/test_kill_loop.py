"""The fault suite: kill -9 ``mdl build``, ``pull``, ``push`` and the registry at random points,
in a bounded loop on 127.0.0.1, and check after every kill that the store holds only complete,
verified content and that running the command again succeeds."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_runner import MdlRunner
from ggufs import write_padded_llama
from servers import RunningServer, start_mdl_registry

ROUNDS = 5
SEED = 20261126
MODEL_MIB = 192


@pytest.fixture(scope="module")
def big_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("faults") / "big.gguf"
    write_padded_llama(path, MODEL_MIB)
    return path


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with start_mdl_registry(tmp_path_factory.mktemp("faults-registry")) as server:
        yield server


def _kill_after(
    args: list[str], env: dict[str, str], delay: float, cwd: Path | None = None
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "mdl.cli", *args],
        env={**os.environ, **env},
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait()


def _assert_store_sound(mdl: MdlRunner, env: dict[str, str]) -> None:
    checked = mdl("verify", "--json", env=env, ok=False)
    assert checked.json() == {"problems": []}, checked.out
    assert checked.code == 0


def test_killed_builds(mdl: MdlRunner, big_gguf: Path, tmp_path: Path) -> None:
    (tmp_path / "Modelfile").write_text(f"FROM {big_gguf}\nSYSTEM hi\n")
    env = {"MDL_HOME": str(tmp_path / "home")}
    chance = random.Random(SEED)
    for _ in range(ROUNDS):
        _kill_after(["build", "-t", "big"], env, chance.uniform(0.0, 1.2), cwd=tmp_path)
        _assert_store_sound(mdl, env)
    digest = mdl("build", "-q", "-t", "big", cwd=tmp_path, env=env).out.strip()
    assert mdl("inspect", "big", env=env).json()["digest"] == digest
    _assert_store_sound(mdl, env)


def test_killed_pulls_and_pushes(
    mdl: MdlRunner, big_gguf: Path, registry: RunningServer, tmp_path: Path
) -> None:
    (tmp_path / "Modelfile").write_text(f"FROM {big_gguf}\n")
    source = {"MDL_HOME": str(tmp_path / "source"), "MDL_CHUNK_SIZE": str(32 * 1024 * 1024)}
    digest = mdl("build", "-q", "-t", "big", cwd=tmp_path, env=source).out.strip()
    ref = f"{registry.host}/faults/big:1"
    chance = random.Random(SEED + 1)
    for _ in range(ROUNDS):
        _kill_after(["push", "big", ref], source, chance.uniform(0.0, 1.5))
    assert mdl("push", "big", ref, "-q", env=source).out.strip() == digest

    target = {"MDL_HOME": str(tmp_path / "target")}
    for _ in range(ROUNDS):
        _kill_after(["pull", ref], target, chance.uniform(0.0, 1.0))
        _assert_store_sound(mdl, target)
    assert mdl("pull", ref, "-q", env=target).out.strip() == digest
    _assert_store_sound(mdl, target)


def test_registry_killed_mid_push(mdl: MdlRunner, big_gguf: Path, tmp_path: Path) -> None:
    (tmp_path / "Modelfile").write_text(f"FROM {big_gguf}\n")
    source = {"MDL_HOME": str(tmp_path / "source"), "MDL_CHUNK_SIZE": str(32 * 1024 * 1024)}
    digest = mdl("build", "-q", "-t", "big", cwd=tmp_path, env=source).out.strip()
    chance = random.Random(SEED + 2)
    with start_mdl_registry(tmp_path / "registry") as server:
        ref = f"{server.host}/faults/restarted:1"
        for _ in range(3):
            pushing = subprocess.Popen(
                [sys.executable, "-m", "mdl.cli", "push", "big", ref],
                env={**os.environ, **source},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(chance.uniform(0.2, 1.0))
            server.kill()
            server.restart()
            pushing.wait(timeout=180)
        assert mdl("push", "big", ref, "-q", env=source).out.strip() == digest
        target = {"MDL_HOME": str(tmp_path / "target")}
        assert mdl("pull", ref, "-q", env=target).out.strip() == digest
        _assert_store_sound(mdl, target)
