"""``/api/push`` and ``/api/pull`` through the real ``ollama`` client: a model goes from one
``mdl serve`` to an ``mdl registry serve`` and into another ``mdl serve``, which then runs it."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import ollama
import pytest
from serving import Served, free_port

GREEDY = {"temperature": 0, "num_predict": 8}


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("registry")
    port = free_port()
    with open(root / "registry.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "mdl.cli", "registry", "serve", "--port", str(port),
             "--root", str(root / "data")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError((root / "registry.log").read_text()) from None
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=15)


@pytest.fixture(scope="module")
def empty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A second server whose store starts empty."""
    server = Served(tmp_path_factory.mktemp("empty-home")).start()
    try:
        yield server
    finally:
        server.stop()


def test_push_then_pull_into_another_server(served: Served, empty: Served, registry: str) -> None:
    name = f"{registry}/demo/tiny:1"
    with ollama.Client(host=served.url) as source, ollama.Client(host=empty.url) as target:
        expected = source.generate(model="tiny", prompt="hello", options=GREEDY).response
        source.copy("tiny", name)
        pushed = list(source.push(name, stream=True))
        assert pushed[-1].status == "success"
        assert any(step.total for step in pushed)  # byte progress was reported

        steps = list(target.pull(name, stream=True))
        assert steps[0].status == "pulling manifest" and steps[-1].status == "success"
        pulled = [s for s in steps if s.completed]
        assert pulled and pulled[-1].completed == pulled[-1].total
        assert name in {m.model for m in target.list().models}
        answer = target.generate(model=name, prompt="hello", options=GREEDY).response
    assert answer == expected


def test_pull_of_a_missing_model_is_an_error(empty: Served, registry: str) -> None:
    with ollama.Client(host=empty.url) as client, pytest.raises(ollama.ResponseError) as caught:
        client.pull(f"{registry}/demo/nothing:1")
    assert "nothing" in caught.value.error
