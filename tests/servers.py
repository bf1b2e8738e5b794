"""Real registries on 127.0.0.1 for tests: mdl's own (``mdl registry serve``) and Debian's
``docker-registry`` (CNCF distribution 2.8). Each runs as a subprocess on a free port and is
stopped by its own PID; use the returned ``RunningServer`` as a context manager.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

READY_TIMEOUT = 30.0


class RunningServer:
    """A server process: ``url`` (``http://127.0.0.1:PORT``), ``host`` (``127.0.0.1:PORT``)."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        port: int,
        log: IO[bytes],
        scheme: str = "http",
        argv: list[str] | None = None,
    ) -> None:
        self.process = process
        self.argv = argv or []
        self.port = port
        self.host = f"127.0.0.1:{port}"
        self.url = f"{scheme}://{self.host}"
        self.log_path = Path(log.name)
        self._log = log

    def log(self) -> str:
        """Everything the server wrote to stdout and stderr so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        stop_process(self.process)
        if not self._log.closed:
            self._log.close()
        self.log_path.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL the server and every process it started (granian's workers), as a crash of
        its machine would: killing the parent alone leaves the workers serving the port."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def restart(self) -> None:
        """Stop the server and start the same command on the same port again."""
        self.stop()
        fresh = _start(self.argv, self.port, self.url.partition(":")[0])
        self.process, self.log_path, self._log = fresh.process, fresh.log_path, fresh._log

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL if it has not ended after ``timeout`` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start(argv: list[str], port: int, scheme: str = "http") -> RunningServer:
    log = tempfile.NamedTemporaryFile(prefix="registry-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )
    server = RunningServer(process, port, log, scheme, argv)
    deadline = time.monotonic() + READY_TIMEOUT
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with httpx.Client(timeout=2, verify=context) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                output = server.log()
                server.stop()
                raise RuntimeError(f"{argv[0]} exited with {process.returncode}:\n{output}")
            try:
                if client.get(f"{server.url}/v2/").status_code in (200, 401):
                    return server
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    output = server.log()
    server.stop()
    raise RuntimeError(f"{' '.join(argv)} not ready after {READY_TIMEOUT}s:\n{output}")


def start_mdl_registry(root: Path, *extra_args: str) -> RunningServer:
    """``python -m mdl.cli registry serve --port <free> --root ROOT [extra_args]``, ready."""
    port = free_port()
    argv = [sys.executable, "-m", "mdl.cli", "registry", "serve", "--port", str(port)]
    argv += ["--root", str(root), *extra_args]
    scheme = "https" if "--tls-cert" in extra_args else "http"
    return _start(argv, port, scheme)


def start_distribution(datadir: Path, htpasswd: tuple[str, str] | None = None) -> RunningServer:
    """Debian's ``docker-registry`` (distribution 2.8) on 127.0.0.1, delete enabled, its
    storage and ``config.yml`` under DATADIR; ``htpasswd`` (user, password) enables basic auth."""
    binary = shutil.which("docker-registry")
    if binary is None:
        raise RuntimeError("docker-registry is not installed (apt-get install docker-registry)")
    port = free_port()
    datadir.mkdir(parents=True, exist_ok=True)
    auth = ""
    if htpasswd is not None:
        user, password = htpasswd
        hashed = subprocess.run(
            ["htpasswd", "-Bbn", user, password], check=True, capture_output=True, text=True
        ).stdout.strip()
        (datadir / "htpasswd").write_text(hashed + "\n")
        auth = f"auth:\n  htpasswd:\n    realm: basic-realm\n    path: {datadir / 'htpasswd'}\n"
    config = datadir / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {datadir / 'storage'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: {os.urandom(16).hex()}\n" + auth
    )
    return _start([binary, "serve", str(config)], port)


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll ``condition`` until it holds; AssertionError naming ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} after {seconds} s")
        time.sleep(0.05)
