"""Shared fixtures: an isolated MDL_HOME, the real ``mdl`` CLI, and small GGUF files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_runner import MdlRunner, Run
from ggufs import write_lora, write_tiny_llama


@pytest.fixture
def mdl_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "mdl-home"
    monkeypatch.setenv("MDL_HOME", str(home))
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    monkeypatch.delenv("MDL_DEFAULT_REGISTRY", raising=False)
    return home


@pytest.fixture
def mdl(mdl_home: Path) -> MdlRunner:
    """Run the real CLI (``python -m mdl.cli``) in a subprocess with this test's MDL_HOME."""

    def run(
        *args: str,
        cwd: Path | None = None,
        stdin: bytes | None = None,
        ok: bool = True,
        env: dict[str, str] | None = None,
    ) -> Run:
        proc = subprocess.run(
            [sys.executable, "-m", "mdl.cli", *args],
            cwd=cwd,
            input=stdin,
            capture_output=True,
            env={**os.environ, **(env or {})},
            timeout=120,
        )
        result = Run(proc.returncode, proc.stdout.decode(), proc.stderr.decode())
        if ok:
            assert result.code == 0, f"mdl {' '.join(args)} failed: {result.err}"
        return result

    return run


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny.gguf, lora.gguf, lora-b.gguf and a LoRA of another architecture, made once."""
    root = tmp_path_factory.mktemp("models")
    write_tiny_llama(root / "tiny.gguf")
    write_tiny_llama(root / "tiny-b.gguf", seed=1, name="tiny-b")
    write_lora(root / "lora.gguf")
    write_lora(root / "lora-b.gguf", seed=1)
    write_lora(root / "qwen-lora.gguf", arch="qwen2")
    return root


from collections.abc import Iterator  # noqa: E402  (appended: shared helpers only grow)

from runtime.serving import Served  # noqa: E402


@pytest.fixture
def mdl_server(mdl_home: Path) -> Iterator[Served]:
    """A real ``mdl serve`` over this test's MDL_HOME (the one the ``mdl`` fixture uses), not yet
    started: put the models in, then ``start()`` it. Stopped at the end."""
    served = Served(mdl_home)
    yield served
    served.stop()
