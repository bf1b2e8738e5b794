"""mdl's own client against mdl's registry: build, push, remove, pull back, same digest; and
through token auth with ``mdl login``."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bcrypt
from servers import RunningServer, start_mdl_registry

MdlRunner = Callable[..., Any]
"""The ``mdl`` fixture of tests/conftest.py: runs the real CLI."""


def build_tiny(mdl: MdlRunner, models_dir: Path, tmp_path: Path) -> str:
    work = tmp_path / "model"
    work.mkdir()
    shutil.copy(models_dir / "tiny.gguf", work / "tiny.gguf")
    (work / "Modelfile").write_text("FROM ./tiny.gguf\nSYSTEM hello\n")
    digest: str = mdl("build", "-t", "tiny:1", "-q", cwd=work).out.strip()
    return digest


def test_mdl_push_and_pull_round_trip(
    mdl: MdlRunner, models_dir: Path, tmp_path: Path, registry: RunningServer
) -> None:
    digest = build_tiny(mdl, models_dir, tmp_path)
    remote = f"{registry.host}/mdl/tiny:1"
    pushed = mdl("push", "tiny:1", remote, "--json").json()
    assert pushed["digest"] == digest
    mdl("rm", "tiny:1")
    pulled = mdl("pull", remote, "--json").json()
    assert pulled["digest"] == digest
    assert mdl("show", remote, "--json").json()["system"] == "hello"


def test_mdl_login_and_push_through_token_auth(
    mdl: MdlRunner, models_dir: Path, tmp_path: Path
) -> None:
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()
    (tmp_path / "htpasswd").write_text(f"carol:{hashed}\n")
    args = ("--auth", "token", "--htpasswd", str(tmp_path / "htpasswd"))
    with start_mdl_registry(tmp_path / "root", *args) as server:
        digest = build_tiny(mdl, models_dir, tmp_path)
        remote = f"{server.host}/carol/tiny:1"
        refused = mdl("push", "tiny:1", remote, ok=False)
        assert refused.code != 0
        mdl("login", server.host, "-u", "carol", "--password-stdin", stdin=b"pw\n")
        assert mdl("push", "tiny:1", remote, "--json").json()["digest"] == digest
