"""Pulling one variant of an index moves only that variant's bytes.

An F16 llama GGUF of about ``--size-mib`` (quantize_bench's design: rows multiples of 256) is
built with ``mdl build --variants q4_K_M,q8_0,f16`` and pushed to distribution 2.8. Each pull
goes into an empty ``MDL_HOME`` through a byte-counting TCP relay in front of the registry, so
the figure is every byte the registry sent (headers, manifests, index, config, layers), set
against the variant's own bytes plus the index and against the whole index. The budget
(``MDL_MEMORY_LIMIT``) is set just above each variant's memory need in turn; the store must then
hold exactly that variant, its config and layers, and the index.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from common import (
    Check,
    Contender,
    FamilyResult,
    MiB,
    Options,
    Timing,
    run_interleaved,
    scratch_dir,
    time_subprocess,
)
from quantize_bench import write_f16_llama
from transfer_bench import start_distribution

NAME = "variants"
TYPES = "q4_K_M,q8_0,f16"
OVERHEAD_LIMIT = 1.01
"""Bytes moved / (variant + index) for one variant: HTTP headers and the checks around the
blobs may add at most 1%."""


def run(options: Options) -> FamilyResult:
    data = options.workdir / "data"
    data.mkdir()
    write_f16_llama(data / "f16.gguf", options.size_mib * MiB)
    (data / "Modelfile").write_text("FROM ./f16.gguf\n")
    home = options.workdir / "home"
    env = {**os.environ, "MDL_HOME": str(home)}
    argv = [str(options.mdl), "build", "--variants", TYPES, "-t", "bench:v", "--json"]
    built = json.loads(time_subprocess(argv, env=env, cwd=data)[1])
    blobs = home / "store" / "blobs" / "sha256"
    index_size = built["size"]
    sizes = {v["quantization"]: _variant_bytes(blobs, v["digest"]) for v in built["variants"]}
    whole = index_size + sum(sizes.values())
    checks: list[Check] = []
    timings: list[Timing] = []
    with (
        start_distribution(options.workdir / "distribution") as registry,
        _relay(registry.host) as (relay, moved),
    ):
        ref = f"{relay}/bench/variants:v"
        time_subprocess([str(options.mdl), "push", "bench:v", ref], env=env)
        for variant in built["variants"]:
            name = variant["quantization"]
            timing = Timing(f"mdl pull, {name} chosen", sizes[name])
            own = sizes[name] + index_size
            sent: list[int] = []

            def pull(variant: dict[str, object] = variant, sent: list[int] = sent) -> tuple[float]:
                with scratch_dir(options.workdir, "pull-") as scratch:
                    pull_env = {
                        **os.environ,
                        "MDL_HOME": str(scratch),
                        "MDL_MEMORY_LIMIT": str(int(str(variant["memory"])) + 1000),
                    }
                    before = moved()
                    elapsed, out = time_subprocess(
                        [str(options.mdl), "pull", ref, "--json"], env=pull_env
                    )
                    sent.append(moved() - before)
                    held = {p.name for p in (scratch / "store" / "blobs" / "sha256").iterdir()}
                    if json.loads(out)["variants"] != [variant["quantization"]] or held != (
                        _closure(blobs, str(variant["digest"])) | {built["digest"][7:]}
                    ):
                        raise RuntimeError(f"pull fetched more than {variant['quantization']}")
                    return (elapsed,)

            run_interleaved([Contender((timing,), pull)], options.repeat)
            timings.append(timing)
            most = max(sent)
            checks.append(
                Check(
                    f"{name}: bytes moved / (variant + index)",
                    most / own,
                    "x",
                    f"≤ {OVERHEAD_LIMIT:.2f}x",
                    most / own <= OVERHEAD_LIMIT,
                )
            )
            over = f"{name}: bytes moved - (variant + index)"
            checks.append(Check(over, most - own, "B", "informational", None))
            checks.append(
                Check(
                    f"{name}: bytes moved / whole index", most / whole, "x", "informational", None
                )
            )
    notes = (
        f"F16 source of {options.size_mib} MiB built as {TYPES}; the index and its variants: "
        + ", ".join(f"{k} {v / MiB:.1f} MiB" for k, v in sizes.items())
        + f", index {index_size} B, whole {whole / MiB:.1f} MiB",
        "bytes moved: everything distribution 2.8 sent through a counting relay on loopback "
        "(headers included), the largest of the rounds",
        "each pull into an empty MDL_HOME with MDL_MEMORY_LIMIT just above that variant's need; "
        "the store must then hold exactly the index and that variant",
    )
    return FamilyResult(
        NAME, "one variant of an index moves only its bytes", notes, tuple(timings), tuple(checks)
    )


def _closure(blobs: Path, digest: str) -> set[str]:
    """The hex names of a variant's manifest, config and layers."""
    doc = json.loads((blobs / digest.removeprefix("sha256:")).read_bytes())
    return {
        digest.removeprefix("sha256:"),
        doc["config"]["digest"].removeprefix("sha256:"),
        *(layer["digest"].removeprefix("sha256:") for layer in doc["layers"]),
    }


def _variant_bytes(blobs: Path, digest: str) -> int:
    return sum((blobs / name).stat().st_size for name in _closure(blobs, digest))


@contextmanager
def _relay(upstream: str) -> Iterator[tuple[str, Callable[[], int]]]:
    """A TCP relay on 127.0.0.1 to ``upstream`` (host:port); yields its address and a function
    returning the bytes sent downstream so far."""
    host, port = upstream.rsplit(":", 1)
    listener = socket.create_server(("127.0.0.1", 0))
    count = [0]
    lock = threading.Lock()

    def pump(src: socket.socket, dst: socket.socket, counted: bool) -> None:
        try:
            while chunk := src.recv(1 << 20):
                dst.sendall(chunk)
                if counted:
                    with lock:
                        count[0] += len(chunk)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def accept() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection((host, int(port)))
            threading.Thread(target=pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=pump, args=(server, client, True), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()

    def moved() -> int:
        with lock:
            return count[0]

    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}", moved
    finally:
        listener.close()
