"""``mdl list`` and ``mdl ps`` read like ``docker images`` and ``ollama list``: full names in a
pipe and on a narrow terminal, human sizes and times; ``--json`` keeps the exact values."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cli_runner import MdlRunner
from servers import free_port, stop_process

from mdl.cli.listing import human_bytes, human_time, table

LONG = "127.0.0.1:42379/demo/smollm2:135m-instruct-q4_1-" + "x" * 60


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1 KB"),
        (1500, "1.5 KB"),
        (489_312, "489 KB"),
        (98_362_432, "98 MB"),
        (1_000_000_000, "1 GB"),
        (4_661_211_136, "4.7 GB"),
        (12_345_678_901_234, "12 TB"),
    ],
)
def test_sizes_read_as_ollama_prints_them(size: int, text: str) -> None:
    assert human_bytes(size) == text


NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(seconds=0.2), "Less than a second ago"),
        (timedelta(seconds=1), "1 second ago"),
        (timedelta(seconds=42), "42 seconds ago"),
        (timedelta(seconds=90), "About a minute ago"),
        (timedelta(minutes=2, seconds=5), "2 minutes ago"),
        (timedelta(minutes=59), "59 minutes ago"),
        (timedelta(minutes=80), "About an hour ago"),
        (timedelta(hours=5), "5 hours ago"),
        (timedelta(days=3), "3 days ago"),
        (timedelta(days=20), "2 weeks ago"),
        (timedelta(days=100), "3 months ago"),
        (timedelta(days=800), "2 years ago"),
        (-timedelta(minutes=4, seconds=59), "4 minutes from now"),
        (-timedelta(days=300 * 365), "Forever"),
    ],
)
def test_times_read_as_ollama_prints_them(delta: timedelta, text: str) -> None:
    assert human_time(NOW - delta, NOW) == text


def test_columns_fit_their_widest_cell() -> None:
    assert table(["NAME", "SIZE"], [["a-very-long-name:latest", "1 KB"], ["b", "20 MB"]]) == [
        "NAME                      SIZE",
        "a-very-long-name:latest   1 KB",
        "b                         20 MB",
    ]


@pytest.fixture
def listed(mdl: MdlRunner, tmp_path: Path, models_dir: Path) -> Path:
    shutil.copy(models_dir / "tiny.gguf", tmp_path / "tiny.gguf")
    (tmp_path / "Modelfile").write_text("FROM ./tiny.gguf\n")
    mdl("build", "-t", LONG, "-t", "tiny", cwd=tmp_path)
    return tmp_path


def test_list_in_a_pipe_shows_whole_names_and_human_units(mdl: MdlRunner, listed: Path) -> None:
    models = mdl("list", "--json").json()["models"]
    lines = mdl("list").out.splitlines()
    assert lines[0].split() == ["NAME", "ID", "SIZE", "MODIFIED"]
    rows = {line.split("   ")[0]: line for line in lines[1:]}
    assert set(rows) == {LONG, "tiny:latest"}
    for model in models:
        row = rows[model["name"]]
        assert model["digest"][7:19] in row
        assert f"   {human_bytes(model['size'])}   " in row and " KB " in row
        assert row.endswith((" seconds ago", "Less than a second ago", "1 second ago"))
    assert "…" not in "".join(lines)


def test_list_on_a_narrow_terminal_still_shows_whole_names(mdl_home: Path, listed: Path) -> None:
    leader, follower = os.openpty()
    env = {**os.environ, "COLUMNS": "40", "MDL_HOME": str(mdl_home)}
    process = subprocess.Popen(
        [sys.executable, "-m", "mdl.cli", "list"], env=env, stdout=follower, stderr=follower
    )
    os.close(follower)
    output = b""
    try:
        while chunk := _read(leader):
            output += chunk
    finally:
        os.close(leader)
        process.wait(timeout=60)
    assert process.returncode == 0, output
    text = output.decode().replace("\r\n", "\n")
    assert any(line.startswith(LONG + "   ") for line in text.splitlines())


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the child closed the terminal
        return b""


def test_ps_shows_whole_names_and_human_units(mdl: MdlRunner, mdl_home: Path, listed: Path) -> None:
    port = free_port()
    env = {"MDL_HOST": f"127.0.0.1:{port}"}
    server = subprocess.Popen(
        [sys.executable, "-m", "mdl.cli", "serve"],
        env={**os.environ, "MDL_HOME": str(mdl_home), **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(f"http://127.0.0.1:{port}/", server)
        mdl("run", LONG, "hi", env=env)
        loaded = mdl("ps", "--json", env=env).json()["models"]
        assert [m["name"] for m in loaded] == [LONG]
        lines = mdl("ps", env=env).out.splitlines()
    finally:
        stop_process(server)
    assert lines[0].split() == ["NAME", "ID", "SIZE", "CONTEXT", "UNTIL"]
    assert lines[1].startswith(LONG + "   ")
    assert f"   {human_bytes(loaded[0]['size'])}   " in lines[1]
    assert lines[1].endswith("minutes from now")


def _wait_for(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = datetime.now(UTC) + timedelta(seconds=30)
    while datetime.now(UTC) < deadline:
        assert server.poll() is None, "mdl serve exited"
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.05)  # polling for readiness, as tests/runtime/serving.py does
    raise AssertionError(f"mdl serve did not answer at {url}")
