"""A real ``mdl serve`` on 127.0.0.1 over a store of tiny models, for the runtime's tests.

``Served`` starts the server as a subprocess (the real CLI), waits until it answers, and stops
it by its own PID. Models are built into its store with the real builder. Worker processes are
found through /proc as the server's children (their command line names the model).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from servers import free_port, stop_process

from mdl.builder.build import build_model
from mdl.spec import mediatypes as mt
from mdl.spec.manifest import Manifest, encode
from mdl.spec.modelfile import parse_modelfile
from mdl.spec.reference import Reference
from mdl.store.store import Store

READY_TIMEOUT = 30.0
MAX_CONTEXT = 32768
"""``MDL_MAX_CONTEXT`` of the test servers: the tiny models were trained on 512 tokens only, and
the tests that need long answers ask for more."""

GO_TEMPLATE = (
    "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
    '{{ range .Messages }}{{ if ne .Role "system" }}'
    "<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}{{ end }}"
    "<|im_start|>assistant\n"
)
"""A ChatML template in Ollama's Go form (Messages style)."""

TOOLS_TEMPLATE = "{{ if .Tools }}<tools>{{ .Tools }}</tools>\n{{ end }}" + GO_TEMPLATE
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TOOL_CALL_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"enum": ["get_weather"]},
        "arguments": {
            "type": "object",
            "properties": {"city": {"enum": ["Paris", "Rome"]}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
    "required": ["name", "arguments"],
    "additionalProperties": False,
}
"""Constrains a random model's answer to a tool call, so tool calling is testable end to end."""


class Served:
    """A running ``mdl serve``: ``url``, ``home`` (its MDL_HOME), ``process``."""

    def __init__(self, home: Path, env: dict[str, str] | None = None) -> None:
        self.home = home
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        self.log_path = home / f"serve-{self.port}.log"
        self.env = {
            **os.environ,
            "MDL_HOME": str(home),
            "MDL_HOST": self.host,
            "MDL_MAX_CONTEXT": str(MAX_CONTEXT),
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def store(self) -> Store:
        return Store.open(self.home)

    def build(self, name: str, modelfile: str, context: Path) -> str:
        result = build_model(
            self.store, parse_modelfile(modelfile), context, [Reference.parse(name)]
        )
        return str(result.descriptor.digest)

    def forge(self, name: str, base: str, filepath: str, content: bytes) -> None:
        """Tag ``name`` as a copy of model ``base`` whose ``filepath`` layer holds ``content``
        (added if ``base`` has none): models the builder would refuse, as a foreign pull
        could bring them."""
        store = self.store
        desc = store.resolve(Reference.parse(base))
        manifest = store.read_manifest(desc)
        assert isinstance(manifest, Manifest)
        blob = store.put_bytes(mt.MODEL_WEIGHT, content, {mt.ANNOTATION_FILEPATH: filepath})
        layers = [
            layer
            for layer in manifest.layers
            if layer.annotations.get(mt.ANNOTATION_FILEPATH) != filepath
        ]
        forged = replace(manifest, layers=(*layers, blob))
        store.tag(store.put_bytes(mt.OCI_MANIFEST, encode(forged)), Reference.parse(name))

    def start(self) -> Served:
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "mdl.cli", "serve"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mdl serve exited: {self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mdl serve did not answer in {READY_TIMEOUT} s: {self.log()}")

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout=15)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One HTTP call; (status, decoded JSON or text)."""
        data = body if isinstance(body, bytes) else None if body is None else json.dumps(body)
        request = urllib.request.Request(
            self.url + path,
            data=data.encode() if isinstance(data, str) else data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            with exc:
                status, raw = exc.code, exc.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode()

    def ps(self) -> list[str]:
        """Names of the loaded models, per /api/ps."""
        status, body = self.request("GET", "/api/ps")
        assert status == 200, body
        return sorted(m["name"] for m in body["models"])

    def workers(self) -> dict[str, int]:
        """Model name -> PID of each live worker process of this server."""
        assert self.process is not None
        found = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == self.process.pid and b"mdl.runtime.worker" in argv:
                found[argv[-2].decode() if argv[-1] == b"" else argv[-1].decode()] = int(entry.name)
        return found

    def kill_worker(self, name: str) -> int:
        pid = self.workers()[name]
        os.kill(pid, signal.SIGKILL)
        return pid


def standard_models(served: Served, models_dir: Path) -> None:
    """``tiny`` (the GGUF's Jinja ChatML), ``tiny-lora`` (one LoRA), ``tiny-go`` (Go template,
    two LoRAs, system prompt, a seed exchange, parameters), ``tiny-b`` (other weights) and
    ``tiny-tools`` (a Go template that offers tools)."""
    served.build("tiny", "FROM ./tiny.gguf\nPARAMETER temperature 0\n", models_dir)
    served.build("tiny-lora", "FROM ./tiny.gguf\nADAPTER ./lora.gguf\n", models_dir)
    served.build(
        "tiny-go",
        "FROM ./tiny.gguf\nADAPTER ./lora.gguf\nADAPTER ./lora-b.gguf\n"
        f'TEMPLATE """{GO_TEMPLATE}"""\n'
        'SYSTEM "be brief"\n'
        "MESSAGE user hello\nMESSAGE assistant world\n"
        "PARAMETER temperature 0\nPARAMETER num_predict 12\nPARAMETER seed 7\n",
        models_dir,
    )
    served.build("tiny-b", "FROM ./tiny-b.gguf\nPARAMETER temperature 0\n", models_dir)
    served.build(
        "tiny-tools",
        f'FROM ./tiny.gguf\nTEMPLATE """{TOOLS_TEMPLATE}"""\nPARAMETER temperature 0\n',
        models_dir,
    )


def sequences(served: Served, model: str = "tiny:latest") -> dict[str, int]:
    """``/api/ps``'s busy and total sequences of a loaded model, and the requests queued."""
    status, body = served.request("GET", "/api/ps")
    assert status == 200, body
    (entry,) = [m for m in body["models"] if m["name"] == model]
    found: dict[str, int] = entry["sequences"]
    return found


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def running(server: Served) -> Iterator[Served]:
    """Start ``server``, yield it, stop it however the module ends: ``yield from running(s)``."""
    server.start()
    try:
        yield server
    finally:
        server.stop()


def speak(path: Path, text: str) -> Path:
    """A WAV of ``text`` that espeak-ng spoke (22050 Hz mono, 16-bit)."""
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True)
    return path
