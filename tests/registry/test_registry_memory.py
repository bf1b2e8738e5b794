"""Big blobs stream: pushing and pulling 512 MiB keeps the server's memory flat."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from servers import RunningServer, start_mdl_registry

SIZE = 512 * 1024 * 1024
PIECE = 4 * 1024 * 1024
ALLOWED_GROWTH = 96 * 1024 * 1024


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry))
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        pending += children.get(current, [])
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


class PeakRss:
    def __init__(self, server: RunningServer) -> None:
        self.pid = server.process.pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss(self.pid))
            time.sleep(0.02)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def body(seed: bytes) -> Iterator[bytes]:
    block = bytearray(hashlib.sha256(seed).digest() * (PIECE // 32))
    for index in range(SIZE // PIECE):
        block[:8] = index.to_bytes(8, "little")
        yield bytes(block)


def test_a_512_mib_push_and_pull_keep_memory_flat(tmp_path: Path) -> None:
    digest = hashlib.sha256()
    for piece in body(b"seed"):
        digest.update(piece)
    dgst = f"sha256:{digest.hexdigest()}"
    server = start_mdl_registry(tmp_path / "root", "--no-access-log")
    with server, httpx.Client(base_url=server.url, timeout=120) as http:
        http.get("/v2/")
        baseline = tree_rss(server.process.pid)
        location = http.post("/v2/big/blob/blobs/uploads/").headers["location"]
        with PeakRss(server) as push:
            response = http.put(location, params={"digest": dgst}, content=body(b"seed"))
        assert response.status_code == 201
        received = hashlib.sha256()
        with PeakRss(server) as pull, http.stream("GET", f"/v2/big/blob/blobs/{dgst}") as got:
            for chunk in got.iter_bytes():
                received.update(chunk)
        assert f"sha256:{received.hexdigest()}" == dgst
    assert push.peak - baseline < ALLOWED_GROWTH, (baseline, push.peak)
    assert pull.peak - baseline < ALLOWED_GROWTH, (baseline, pull.peak)
