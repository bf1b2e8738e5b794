"""``mdl run``, ``mdl ps`` and ``mdl stop`` against a real ``mdl serve`` (the real CLI)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import ollama
from serving import Served

GREEDY = {"temperature": 0, "num_predict": 12}


def mdl(served: Served, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "mdl.cli", *args],
        env=served.env,
        input=stdin,
        capture_output=True,
        timeout=120,
    )


def test_run_answers_a_prompt(served: Served) -> None:
    done = mdl(served, "run", "tiny-go", "cat")
    assert done.returncode == 0, done.stderr
    with ollama.Client(host=served.url) as client:
        chat = client.chat(model="tiny-go", messages=[{"role": "user", "content": "cat"}])
    assert done.stdout.decode() == f"{chat.message.content}\n"


def test_run_reads_the_prompt_from_stdin(served: Served) -> None:
    piped = mdl(served, "run", "tiny-go", stdin=b"cat")
    assert piped.returncode == 0 and piped.stdout == mdl(served, "run", "tiny-go", "cat").stdout


def test_run_chats_with_history_on_a_terminal(served: Served) -> None:
    """Without a prompt on a terminal: a chat; the second turn sees the first."""
    leader, follower = os.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "mdl.cli", "run", "tiny-go"],
        env=served.env,
        stdin=follower,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    os.close(follower)
    try:
        os.write(leader, b"cat\ndog\n/bye\n")
        out, err = process.communicate(timeout=120)
    finally:
        os.close(leader)
    assert process.returncode == 0, err
    with ollama.Client(host=served.url) as client:
        first = client.chat(model="tiny-go", messages=[{"role": "user", "content": "cat"}])
        second = client.chat(
            model="tiny-go",
            messages=[
                {"role": "user", "content": "cat"},
                {"role": "assistant", "content": first.message.content or ""},
                {"role": "user", "content": "dog"},
            ],
        )
    text = out.decode()
    assert f"{first.message.content}\n" in text and f"{second.message.content}\n" in text


def test_ps_then_stop(served: Served) -> None:
    assert mdl(served, "run", "tiny-go", "hi").returncode == 0
    listed = mdl(served, "ps")
    assert listed.returncode == 0 and "tiny-go:latest" in listed.stdout.decode()
    assert "NAME" in listed.stdout.decode()
    stopped = mdl(served, "stop", "tiny-go")
    assert stopped.returncode == 0, stopped.stderr
    assert "tiny-go:latest" not in served.ps()
    as_json = mdl(served, "ps", "--json")
    assert as_json.returncode == 0 and b'"models"' in as_json.stdout


def test_run_unknown_model_exits_4(served: Served) -> None:
    done = mdl(served, "run", "nosuch", "hi")
    assert done.returncode == 4
    assert done.stderr.decode().startswith("Error: ") and "nosuch" in done.stderr.decode()


def test_without_a_server_the_error_says_so(served: Served, tmp_path: Path) -> None:
    env = {**served.env, "MDL_HOST": "127.0.0.1:9"}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "mdl.cli", "ps"], env=env, capture_output=True, timeout=60
    )
    assert done.returncode == 1 and b"mdl serve" in done.stderr
    assert time.monotonic() - started < 30


def test_run_verbose_prints_timings(served: Served) -> None:
    done = mdl(served, "run", "tiny-go", "cat", "--verbose")
    assert done.returncode == 0, done.stderr
    assert b"tokens/s" in done.stderr and b"prompt" in done.stderr
