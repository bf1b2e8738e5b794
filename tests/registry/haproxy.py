"""HAProxy in front of registry replicas for the replica tests: ``scripts/haproxy.sh`` under a
temporary directory, and what its admin socket says about each replica."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rgw import Rgw
from servers import RunningServer, free_port

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "haproxy.sh"


@dataclass
class Balanced:
    """Replicas behind one HAProxy: ``url``/``host`` are the load balancer's; replica ``i``
    is HAProxy's server ``r<i+1>``."""

    url: str
    socket: Path
    replicas: list[RunningServer] = field(default_factory=list)
    bucket: str = ""

    @property
    def host(self) -> str:
        return self.url.removeprefix("http://")

    def command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(str(self.socket))
            conn.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := conn.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def status(self) -> dict[str, str]:
        """HAProxy's view of each replica: ``r1`` -> ``UP``, ``DOWN``, ``MAINT``, ..."""
        text = self.command("show stat").lstrip("# ")
        rows = csv.DictReader(io.StringIO(text))
        return {
            row["svname"]: row["status"].split()[0]
            for row in rows
            if row["pxname"] == "replicas" and row["svname"] not in ("BACKEND", "FRONTEND")
        }

    def wait_for(self, server: str, state: str, seconds: float = 20) -> None:
        deadline = time.monotonic() + seconds
        while (seen := self.status().get(server)) != state:
            if time.monotonic() > deadline:
                raise AssertionError(f"HAProxy still says {server} is {seen}, not {state}")
            time.sleep(0.05)

    def only(self, server: str) -> None:
        """Send every request to ``server``: the others go to maintenance."""
        for other in self.status():
            if other != server:
                self.command(f"set server replicas/{other} state maint")

    def all_ready(self) -> None:
        for name in self.status():
            self.command(f"set server replicas/{name} state ready")


@contextlib.contextmanager
def replicas(rgw: Rgw, directory: Path, count: int, *args: str) -> Iterator[Balanced]:
    """``count`` replicas of ``mdl registry serve`` on a new bucket, sharing one secret
    (``--secret-file``), draining 3 s on SIGTERM, streaming blobs, behind a new HAProxy."""
    bucket = rgw.bucket()
    secret = directory / "secret"
    secret.write_text(os.urandom(32).hex() + "\n")
    flags = ("--s3-redirect", "false", "--secret-file", str(secret), "--drain", "3", *args)
    with contextlib.ExitStack() as stack:
        started = [
            stack.enter_context(rgw.serve(bucket, directory / f"r{i}", *flags))
            for i in range(1, count + 1)
        ]
        balanced = stack.enter_context(start_haproxy(directory / "haproxy", started))
        balanced.bucket = bucket
        yield balanced


@contextlib.contextmanager
def start_haproxy(directory: Path, replicas: list[RunningServer]) -> Iterator[Balanced]:
    """scripts/haproxy.sh round-robin over ``replicas``, ready once HAProxy sees them all up."""
    backends = [replica.host for replica in replicas]
    started = subprocess.run(
        [str(SCRIPT), "start", str(free_port()), str(directory), *backends],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if started.returncode != 0:
        raise RuntimeError(f"scripts/haproxy.sh failed:\n{started.stderr}")
    try:
        values = dict(line.split("=", 1) for line in started.stdout.splitlines() if "=" in line)
        balanced = Balanced(values["HAPROXY_URL"], Path(values["HAPROXY_SOCKET"]), replicas)
        for number in range(1, len(replicas) + 1):
            balanced.wait_for(f"r{number}", "UP")
        yield balanced
    finally:
        subprocess.run([str(SCRIPT), "stop", str(directory)], check=False, timeout=60)
