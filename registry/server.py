"""Serve the registry with granian (a Rust ASGI server that sends files with pathsend).

The CLI builds a ``ServeConfig``, checks it in its own process (so a bad htpasswd or policy file
is a clear error), then hands it to granian's workers through the ``MDL_REGISTRY_CONFIG``
environment variable; each worker calls ``app_from_env``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import subprocess
import sys
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from mdl.registry import secret
from mdl.registry.app import create_app
from mdl.registry.auth.gate import AuthSettings
from mdl.registry.auth.htpasswd import Htpasswd
from mdl.registry.auth.policy import Policy
from mdl.registry.auth.tokens import TokenIssuer, load_or_create_key
from mdl.registry.drain import DRAIN_SIGNAL, Drain
from mdl.registry.malloc import return_large_buffers
from mdl.registry.proxy_upstream import DEFAULT_TTL, UpstreamSettings, proxy_settings
from mdl.registry.sessions import DEFAULT_MAX_UPLOADS, DEFAULT_UPLOAD_EXPIRY, UploadLimits
from mdl.registry.storage.driver import StorageDriver
from mdl.registry.storage.select import open_storage
from mdl.spec.browser import BrowserPolicy, is_loopback
from mdl.spec.errors import MdlError, StoreError

CONFIG_ENV = "MDL_REGISTRY_CONFIG"
TOKEN_KEY_FILE = ".token-key.pem"
SECRET_FILE = ".upload-secret"
_UNQUOTABLE = re.compile(r'["\\\x00-\x1f\x7f]')


class ServeError(MdlError):
    exit_code = 2


@dataclass(frozen=True)
class ServeConfig:
    root: str
    host: str = "127.0.0.1"
    port: int = 5000
    auth: str = "none"
    """``none``, ``basic`` or ``token``."""
    htpasswd: str | None = None
    policy: str | None = None
    anonymous_pull: tuple[str, ...] = ()
    token_key: str | None = None
    token_ttl: int = 300
    service: str = "mdl-registry"
    realm: str | None = None
    read_only: bool = False
    tls_cert: str | None = None
    tls_key: str | None = None
    insecure: bool = False
    workers: int = 1
    access_log: bool = True
    origins: tuple[str, ...] = ()
    """More browser origins open access answers (``MDL_ORIGINS``), as ``mdl serve`` takes."""
    max_uploads: int = DEFAULT_MAX_UPLOADS
    """Open upload sessions per repository."""
    upload_expiry: int = DEFAULT_UPLOAD_EXPIRY
    """Seconds after which an idle upload session may be dropped (its memory at once)."""
    storage: str | None = None
    """``s3://BUCKET[/PREFIX]``; None for the filesystem under ``root``."""
    s3_endpoint: str | None = None
    s3_region: str | None = None
    s3_redirect: bool = True
    """Answer blob GETs with a 307 to a presigned URL (S3 only)."""
    proxy: str | None = None
    """The upstream registry's URL: serve as its pull-through cache."""
    proxy_user: str | None = None
    proxy_password_file: str | None = None
    proxy_ttl: float = DEFAULT_TTL
    ui: bool = True
    """Serve the registry browser at ``/ui``."""
    drain: float = 0.0
    """Seconds between SIGTERM and stopping, while the health check answers 503 (``drain``)."""
    secret_file: str | None = None
    """The secret signing upload state (default ``root/.upload-secret``, made when missing)."""

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls, text: str) -> ServeConfig:
        fields = json.loads(text)
        fields["anonymous_pull"] = tuple(fields.get("anonymous_pull", ()))
        fields["origins"] = tuple(fields.get("origins", ()))
        return cls(**fields)


def check(config: ServeConfig) -> None:
    """Refuse what cannot or must not run; ServeError says why."""
    if config.auth not in ("none", "basic", "token"):
        raise ServeError(f"--auth must be basic or token, not {config.auth!r}")
    if config.auth == "basic" and not config.htpasswd:
        raise ServeError("--auth basic needs --htpasswd FILE")
    if bool(config.tls_cert) != bool(config.tls_key):
        raise ServeError("--tls-cert and --tls-key go together")
    if not config.tls_cert and not is_loopback(config.host) and not config.insecure:
        raise ServeError(
            f"refusing to serve plain HTTP on {config.host}, which is not a loopback address: "
            "give --tls-cert and --tls-key, or --insecure to do it anyway"
        )
    if config.auth == "none" and (config.policy or config.anonymous_pull):
        raise ServeError("--policy and --anonymous-pull need --htpasswd or --auth token")
    for flag, value in (("--service", config.service), ("--realm", config.realm or "")):
        if _UNQUOTABLE.search(value):
            raise ServeError(f"{flag} must not hold quotes, backslashes or control characters")
    if config.drain < 0:
        raise ServeError("--drain must not be negative")
    if config.max_uploads < 1 or config.upload_expiry < 1:
        raise ServeError("--max-uploads and --upload-expiry must be at least 1")
    if config.storage is None and (config.s3_endpoint or config.s3_region):
        raise ServeError("--s3-endpoint and --s3-region need --storage s3://BUCKET")
    if config.proxy is None and (config.proxy_user or config.proxy_password_file):
        raise ServeError("--proxy-user and --proxy-password-file need --proxy URL")
    upstream_settings(config)
    if config.storage is None:
        _check_app(config)
        return
    # boto3 with S3's service model costs this process about 30 MB it would keep for nothing
    # (it only supervises the workers): the bucket is checked in a short-lived child instead.
    child = subprocess.run(
        [sys.executable, "-c", "from mdl.registry.server import check_in_child; check_in_child()"],
        env={**os.environ, CONFIG_ENV: config.to_env()},
        capture_output=True,
        text=True,
        check=False,
    )
    if child.returncode != 0:
        lines = child.stderr.strip().splitlines()
        raise ServeError(lines[-1] if lines else f"the storage check exited {child.returncode}")


def _check_app(config: ServeConfig) -> None:
    build_app(config, storage_driver(config, check=True))


def check_in_child() -> None:
    """``check``'s child: the app for the config in the environment, or its error on stderr."""
    try:
        _check_app(ServeConfig.from_env(os.environ[CONFIG_ENV]))
    except MdlError as exc:
        sys.exit(str(exc))


def storage_driver(config: ServeConfig, *, check: bool = False) -> StorageDriver:
    root, storage = Path(config.root), config.storage
    try:
        return open_storage(root, storage, config.s3_endpoint, config.s3_region, check=check)
    except (ValueError, StoreError) as exc:
        raise ServeError(f"--storage {storage}: {exc}") from exc


def auth_settings(config: ServeConfig) -> AuthSettings | None:
    if config.auth == "none":
        return None
    htpasswd = Htpasswd.load(Path(config.htpasswd)) if config.htpasswd else None
    policy = Policy.build(Path(config.policy) if config.policy else None, config.anonymous_pull)
    issuer = None
    if config.auth == "token":
        key_path = Path(config.token_key or Path(config.root) / TOKEN_KEY_FILE)
        try:
            key = load_or_create_key(key_path)
        except (OSError, ValueError) as exc:
            raise ServeError(f"token key {key_path}: {exc}") from exc
        issuer = TokenIssuer(key, config.service, config.token_ttl)
    return AuthSettings(htpasswd, policy, issuer, config.realm)


def upstream_settings(config: ServeConfig) -> UpstreamSettings | None:
    if config.proxy is None:
        return None
    try:
        return proxy_settings(
            config.proxy, config.proxy_user, config.proxy_password_file, config.proxy_ttl
        )
    except ValueError as exc:
        raise ServeError(str(exc)) from exc


def upload_secret(config: ServeConfig) -> bytes:
    path = Path(config.secret_file or Path(config.root) / SECRET_FILE)
    try:
        return secret.load_or_create(path)
    except (OSError, ValueError) as exc:
        raise ServeError(f"secret file {path}: {exc}") from exc


def build_app(
    config: ServeConfig, driver: StorageDriver | None = None, drain: Drain | None = None
) -> Starlette:
    return create_app(
        driver or storage_driver(config),
        auth=auth_settings(config),
        read_only=config.read_only,
        browser=BrowserPolicy.create(config.host, config.origins),
        limits=UploadLimits(per_repository=config.max_uploads, expiry=config.upload_expiry),
        redirect=config.s3_redirect,
        proxy=upstream_settings(config),
        ui=config.ui,
        secret=upload_secret(config),
        drain=drain,
    )


def app_from_env() -> Starlette:
    """granian's factory: the app for the config the CLI put in the environment."""
    return_large_buffers()
    config = ServeConfig.from_env(os.environ[CONFIG_ENV])
    access = logging.getLogger("mdl.registry.access")
    access.propagate = False
    if config.access_log and not access.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(handler)
        access.setLevel(logging.INFO)
    drain = Drain()
    drain.install()
    return build_app(config, drain=drain)


def serve(config: ServeConfig) -> None:
    """Run until interrupted."""
    from granian.constants import Interfaces
    from granian.log import LogLevels
    from granian.server import Server

    return_large_buffers()
    check(config)
    os.environ[CONFIG_ENV] = config.to_env()
    server = _draining(Server, config.drain)(
        "mdl.registry.server:app_from_env",
        address=config.host,
        port=config.port,
        interface=Interfaces.ASGI,
        workers=config.workers,
        factory=True,
        log_level=LogLevels.warning,
        ssl_cert=Path(config.tls_cert) if config.tls_cert else None,
        ssl_key=Path(config.tls_key) if config.tls_key else None,
    )
    server.serve()


def _draining(server_class: type[Any], seconds: float) -> type[Any]:
    """granian's server, whose first SIGTERM makes the workers drain (``drain``) for
    ``seconds`` before they are stopped; a second one stops them at once."""

    class DrainingServer(server_class):  # type: ignore[misc]
        _draining = False

        def signal_handler_interrupt(self, *args: Any, **kwargs: Any) -> None:
            if self._draining or seconds <= 0:
                super().signal_handler_interrupt(*args, **kwargs)
                return
            self._draining = True
            for worker in list(self.wrks):
                with contextlib.suppress(ProcessLookupError, AttributeError):
                    os.kill(worker.inner.pid, DRAIN_SIGNAL)
            stop = threading.Timer(seconds, super().signal_handler_interrupt)
            stop.daemon = True
            stop.start()

    return DrainingServer
