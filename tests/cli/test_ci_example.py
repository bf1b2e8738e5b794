"""examples/ci/build-and-push.sh: a versioned, reproducible build pushed with env credentials."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_runner import MdlRunner
from servers import RunningServer, start_distribution

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "ci" / "build-and-push.sh"
USER, PASSWORD = "ci-bot", "t0ken"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with start_distribution(tmp_path_factory.mktemp("ci-registry"), (USER, PASSWORD)) as server:
        yield server


@pytest.fixture
def project(tmp_path: Path, models_dir: Path) -> Path:
    repo = tmp_path / "project"
    repo.mkdir()
    shutil.copy(models_dir / "tiny.gguf", repo / "tiny.gguf")
    (repo / "Modelfile").write_text('FROM ./tiny.gguf\nSYSTEM "from CI"\n')
    git = ["git", "-c", "user.name=ci", "-c", "user.email=ci@example.com"]
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "model"], ["tag", "v1.2.3"]):
        subprocess.run([*git, *args], cwd=repo, check=True, capture_output=True)
    return repo


def _run(
    project: Path,
    registry: RunningServer,
    password: str,
    home: Path,
    hosts: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """The script as CI runs it; ``hosts`` is MDL_REGISTRY_HOST (unset: the script's default)."""
    env = {
        **os.environ,
        "MDL": str(Path(sys.executable).with_name("mdl")),
        "MDL_HOME": str(home),
        "MODEL_REPOSITORY": f"{registry.host}/ci/tiny",
        "MDL_REGISTRY_USER": USER,
        "MDL_REGISTRY_PASSWORD": password,
    }
    env.pop("SOURCE_DATE_EPOCH", None)
    env.pop("MDL_REGISTRY_HOST", None)
    if hosts is not None:
        env["MDL_REGISTRY_HOST"] = hosts
    return subprocess.run(
        ["bash", str(SCRIPT)], cwd=project, env=env, capture_output=True, text=True, timeout=300
    )


def test_pipeline_builds_versions_and_pushes(
    mdl: MdlRunner, project: Path, registry: RunningServer, tmp_path: Path
) -> None:
    done = _run(project, registry, PASSWORD, tmp_path / "home-a")
    assert done.returncode == 0, done.stderr
    digest = done.stdout.strip()
    assert digest.startswith("sha256:") and (project / "model.digest").read_text() == digest
    again = _run(project, registry, PASSWORD, tmp_path / "home-b")
    assert again.stdout.strip() == digest  # reproducible in a fresh home
    env = {
        "MDL_HOME": str(tmp_path / "puller"),
        "MDL_REGISTRY_USER": USER,
        "MDL_REGISTRY_PASSWORD": PASSWORD,
        "MDL_REGISTRY_HOST": registry.host,
    }
    ref = f"{registry.host}/ci/tiny:v1.2.3"
    assert mdl("pull", ref, "-q", env=env).out.strip() == digest
    annotations = mdl("inspect", ref, env=env).json()["manifest"]["annotations"]
    assert annotations["org.opencontainers.image.version"] == "v1.2.3"
    assert len(annotations["org.opencontainers.image.revision"]) == 40
    built = json.loads((project / "model-build.json").read_text())
    assert built["pushed"][0]["reference"] == ref and built["pushed"][0]["digest"] == digest


def test_pipeline_fails_on_bad_credentials(
    project: Path, registry: RunningServer, tmp_path: Path
) -> None:
    done = _run(project, registry, "wrong", tmp_path / "home")
    assert done.returncode == 3
    assert "Error: " in done.stderr and "wrong" not in done.stderr


def test_pipeline_credentials_go_only_to_the_listed_hosts(
    project: Path, registry: RunningServer, tmp_path: Path
) -> None:
    done = _run(project, registry, PASSWORD, tmp_path / "home", hosts="registry.example.com")
    assert done.returncode == 3 and "401" in done.stderr
