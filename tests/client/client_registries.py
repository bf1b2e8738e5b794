"""Registries for the client tests: Debian's docker-registry (distribution 2.8) on 127.0.0.1."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cli_runner import MdlRunner


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Registry:
    host: str
    process: subprocess.Popen[bytes]
    config: Path

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.process = _spawn(self.config, self.host)


def _spawn(config: Path, host: str) -> subprocess.Popen[bytes]:
    log = open(config.parent / "registry.log", "ab")  # noqa: SIM115 - the child owns it
    process = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log, stderr=log)
    log.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://{host}/v2/").status_code in (200, 401):
                return process
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(
        f"docker-registry did not start: {(config.parent / 'registry.log').read_text()}"
    )


def start_distribution(root: Path, htpasswd: tuple[str, str] | None = None) -> Registry:
    root.mkdir(parents=True, exist_ok=True)
    host = f"127.0.0.1:{free_port()}"
    auth = ""
    if htpasswd:
        subprocess.run(
            ["htpasswd", "-Bbc", str(root / "htpasswd"), *htpasswd], check=True, capture_output=True
        )
        auth = f"auth:\n  htpasswd:\n    realm: mdl-test\n    path: {root / 'htpasswd'}\n"
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {root / 'storage'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: {host}\n{auth}"
    )
    return Registry(host, _spawn(config, host), config)


@pytest.fixture(scope="module")
def distribution(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    registry = start_distribution(tmp_path_factory.mktemp("distribution"))
    yield registry
    registry.stop()


@pytest.fixture(scope="module")
def distribution_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    registry = start_distribution(tmp_path_factory.mktemp("distribution-auth"), ("alice", "s3cret"))
    yield registry
    registry.stop()


@pytest.fixture
def tiny_model(mdl: MdlRunner, tmp_path: Path, models_dir: Path) -> str:
    """A local model 'tiny' with an adapter, a template, parameters; returns its digest."""
    for name in ("tiny.gguf", "lora.gguf"):
        shutil.copy(models_dir / name, tmp_path / name)
    (tmp_path / "Modelfile").write_text(
        'FROM ./tiny.gguf\nADAPTER ./lora.gguf\nSYSTEM "Be brief."\nPARAMETER num_ctx 128\n'
    )
    return mdl("build", "-q", "-t", "tiny", cwd=tmp_path).out.strip()
