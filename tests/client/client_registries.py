"""Registries and a model for the client tests: distribution 2.8 and mdl's own, on 127.0.0.1."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cli_runner import MdlRunner
from servers import RunningServer, start_distribution, start_mdl_registry


@dataclass
class Registry:
    server: RunningServer
    datadir: Path

    @property
    def host(self) -> str:
        return self.server.host

    def restart(self) -> None:
        self.server.restart()

    def blob_file(self, digest: str) -> Path:
        """Where distribution keeps a blob's bytes (to corrupt it on purpose)."""
        hex_ = digest.removeprefix("sha256:")
        v2 = self.datadir / "storage" / "docker" / "registry" / "v2"
        return v2 / "blobs" / "sha256" / hex_[:2] / hex_ / "data"


@pytest.fixture(scope="module")
def distribution(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    datadir = tmp_path_factory.mktemp("distribution")
    with start_distribution(datadir) as server:
        yield Registry(server, datadir)


@pytest.fixture(scope="module")
def distribution_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    datadir = tmp_path_factory.mktemp("distribution-auth")
    with start_distribution(datadir, ("alice", "s3cret")) as server:
        yield Registry(server, datadir)


@pytest.fixture(scope="module")
def mdl_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    datadir = tmp_path_factory.mktemp("mdl-registry")
    with start_mdl_registry(datadir) as server:
        yield Registry(server, datadir)


@pytest.fixture
def tiny_model(mdl: MdlRunner, tmp_path: Path, models_dir: Path) -> str:
    """A local model 'tiny' with an adapter, a system prompt and a parameter; its digest."""
    for name in ("tiny.gguf", "lora.gguf"):
        shutil.copy(models_dir / name, tmp_path / name)
    (tmp_path / "Modelfile").write_text(
        'FROM ./tiny.gguf\nADAPTER ./lora.gguf\nSYSTEM "Be brief."\nPARAMETER num_ctx 128\n'
    )
    return mdl("build", "-q", "-t", "tiny", cwd=tmp_path).out.strip()
