"""Where a registry host's credentials come from, first match wins:

1. ``MDL_REGISTRY_USER`` / ``MDL_REGISTRY_PASSWORD`` (CI), for the hosts listed in
   ``MDL_REGISTRY_HOST`` (comma-separated ``host[:port]``), or when it is unset for the host of
   ``MDL_DEFAULT_REGISTRY``: never for any host that asks, as docker and oras scope credentials;
2. ``mdl login``: ``$MDL_HOME/auth.json``, mode 0600, ``{"auths": {host: {"auth": b64}}}``;
3. docker's ``config.json`` (``$DOCKER_CONFIG`` or ``~/.docker``): ``credHelpers[host]``, then
   ``credsStore``, through ``docker-credential-<helper> get``; then ``auths[host].auth``.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mdl.spec.errors import MdlError
from mdl.store import layout
from mdl.store.fsio import atomic_write

DOCKER_HUB = "registry-1.docker.io"
_DOCKER_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io")


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def __repr__(self) -> str:  # never print a secret by accident
        return f"Credentials(username={self.username!r}, password=***)"


def canonical_host(host: str) -> str:
    """``docker.io`` (and ``index.docker.io``) mean Docker Hub's registry, as in docker."""
    host = host.strip().lower()
    return DOCKER_HUB if host in ("docker.io", "index.docker.io") else host


def lookup(host: str) -> Credentials | None:
    """The credentials for ``host`` (``host[:port]``), the host that asks for them."""
    user, password = os.environ.get("MDL_REGISTRY_USER"), os.environ.get("MDL_REGISTRY_PASSWORD")
    if user and password is not None and canonical_host(host) in env_hosts():
        return Credentials(user, password)
    stored = _auth_entry(_read_json(auth_file()), host)
    if stored:
        return stored
    return _from_docker(host)


def env_hosts() -> set[str]:
    """The hosts ``MDL_REGISTRY_USER`` and ``MDL_REGISTRY_PASSWORD`` are for."""
    listed = os.environ.get("MDL_REGISTRY_HOST") or os.environ.get("MDL_DEFAULT_REGISTRY") or ""
    return {canonical_host(h) for h in listed.split(",") if h.strip()}


def auth_file() -> Path:
    return layout.home() / "auth.json"


def save(host: str, credentials: Credentials) -> None:
    """Store credentials for ``host`` in ``$MDL_HOME/auth.json``, readable by the owner only."""
    doc = _read_json(auth_file())
    auths = doc.setdefault("auths", {})
    token = f"{credentials.username}:{credentials.password}".encode()
    auths[host] = {"auth": base64.b64encode(token).decode()}
    _write_private(auth_file(), json.dumps(doc, indent=2).encode())


def forget(host: str) -> bool:
    doc = _read_json(auth_file())
    if host not in doc.get("auths", {}):
        return False
    del doc["auths"][host]
    _write_private(auth_file(), json.dumps(doc, indent=2).encode())
    return True


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    old = os.umask(0o077)  # the temporary file is created 0600 before any secret is written
    try:
        atomic_write(path, data)
    finally:
        os.umask(old)
    os.chmod(path, 0o600)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise MdlError(f"{path}: unreadable credentials file: {exc}") from exc
    return doc if isinstance(doc, dict) else {}


def _keys(host: str) -> tuple[str, ...]:
    if host == DOCKER_HUB:
        return (host, *_DOCKER_HUB_KEYS)
    return (host, f"https://{host}", f"http://{host}")


def _auth_entry(doc: dict[str, Any], host: str) -> Credentials | None:
    auths = doc.get("auths")
    if not isinstance(auths, dict):
        return None
    for key in _keys(host):
        entry = auths.get(key)
        if isinstance(entry, dict) and isinstance(entry.get("auth"), str):
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            return Credentials(user, password)
    return None


def _from_docker(host: str) -> Credentials | None:
    directory = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
    doc = _read_json(directory / "config.json")
    helpers = doc.get("credHelpers")
    helper = None
    if isinstance(helpers, dict):
        helper = next((helpers[k] for k in _keys(host) if k in helpers), None)
    helper = helper or doc.get("credsStore")
    if isinstance(helper, str) and helper:
        found = _from_helper(helper, host)
        if found:
            return found
    return _auth_entry(doc, host)


def _from_helper(helper: str, host: str) -> Credentials | None:
    """Ask ``docker-credential-<helper> get``; a helper that knows nothing answers non-zero."""
    server = "https://index.docker.io/v1/" if host == DOCKER_HUB else host
    try:
        done = subprocess.run(
            [f"docker-credential-{helper}", "get"],
            input=server.encode(),
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    try:
        answer = json.loads(done.stdout)
        return Credentials(answer["Username"], answer["Secret"])
    except (ValueError, KeyError, TypeError):
        return None
