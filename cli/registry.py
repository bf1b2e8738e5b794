"""``mdl registry serve`` and ``mdl registry gc``: run mdl's OCI registry, and clean it."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from mdl.cli import console
from mdl.store.layout import home

registry_app = typer.Typer(
    help="Run mdl's OCI distribution registry and maintain its storage.",
    no_args_is_help=True,
)
ROOT = typer.Option(
    None, "--root", help="Storage directory (default: $MDL_HOME/registry).", show_default=False
)
STORAGE = typer.Option(
    None,
    "--storage",
    help="s3://BUCKET\\[/PREFIX] to keep everything in S3 instead of --root "
    "(credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws).",
    show_default=False,
)
S3_ENDPOINT = typer.Option(
    None, "--s3-endpoint", help="S3 server URL (default: AWS, or $AWS_ENDPOINT_URL)."
)
S3_REGION = typer.Option(None, "--s3-region", help="S3 region (default: $AWS_REGION, ~/.aws).")


def register(app: typer.Typer) -> None:
    app.add_typer(registry_app, name="registry")


def _root(root: Path | None) -> Path:
    return root if root is not None else home() / "registry"


@registry_app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(5000, "--port", help="Port to listen on."),
    root: Path | None = ROOT,
    htpasswd: Path | None = typer.Option(
        None, "--htpasswd", help="bcrypt htpasswd file (htpasswd -B): enables basic auth."
    ),
    auth: str | None = typer.Option(
        None, "--auth", help="basic or token (default: basic with --htpasswd, else none)."
    ),
    policy: Path | None = typer.Option(
        None, "--policy", help="TOML file of per-repository pull/push/delete grants."
    ),
    anonymous_pull: list[str] = typer.Option(
        [], "--anonymous-pull", help="Let anyone pull NAMESPACE and NAMESPACE/* (repeatable)."
    ),
    token_ttl: int = typer.Option(300, "--token-ttl", help="Token lifetime in seconds."),
    token_key: Path | None = typer.Option(
        None, "--token-key", help="Ed25519 PEM key signing tokens (default: ROOT/.token-key.pem)."
    ),
    service: str = typer.Option("mdl-registry", "--service", help="Token service name."),
    realm: str | None = typer.Option(
        None, "--realm", help="Token endpoint URL to advertise (default: this server's /token)."
    ),
    read_only: bool = typer.Option(False, "--read-only", help="Refuse pushes and deletes."),
    tls_cert: Path | None = typer.Option(None, "--tls-cert", help="PEM certificate (chain)."),
    tls_key: Path | None = typer.Option(None, "--tls-key", help="PEM private key."),
    insecure: bool = typer.Option(
        False, "--insecure", help="Allow plain HTTP on a non-loopback address."
    ),
    workers: int = typer.Option(1, "--workers", min=1, help="Server worker processes."),
    origin: list[str] = typer.Option(
        [],
        "--origin",
        help="More browser origins open mode answers (repeatable; default $MDL_ORIGINS).",
    ),
    max_uploads: int = typer.Option(
        100, "--max-uploads", min=1, help="Open upload sessions allowed per repository."
    ),
    upload_expiry: int = typer.Option(
        86400,
        "--upload-expiry",
        min=1,
        help="Drop upload sessions idle this long (seconds) when a repository is full.",
    ),
    access_log: bool = typer.Option(
        True, "--access-log/--no-access-log", help="JSON access log lines on stderr."
    ),
    storage: str | None = STORAGE,
    s3_endpoint: str | None = S3_ENDPOINT,
    s3_region: str | None = S3_REGION,
    s3_redirect: str = typer.Option(
        "true",
        "--s3-redirect",
        help="true: blob GETs answer 307 to a presigned S3 URL; false: stream through.",
    ),
    proxy: str | None = typer.Option(
        None,
        "--proxy",
        help="Upstream registry URL (http(s)://HOST[:PORT]): serve as its pull-through cache.",
    ),
    proxy_user: str | None = typer.Option(None, "--proxy-user", help="User for the upstream."),
    proxy_password_file: Path | None = typer.Option(
        None, "--proxy-password-file", help="File holding --proxy-user's password."
    ),
    proxy_ttl: str = typer.Option(
        "168h", "--proxy-ttl", help="How long a cached tag is served before it is revalidated."
    ),
    ui: bool = typer.Option(True, "--ui/--no-ui", help="Serve the registry browser at /ui."),
    drain: float = typer.Option(
        0.0,
        "--drain",
        min=0.0,
        help="On SIGTERM, answer the health check (GET /v2/) with 503 for this many seconds "
        "while serving the rest, then stop.",
    ),
    secret_file: Path | None = typer.Option(
        None,
        "--secret-file",
        help="Secret signing upload state; replicas share it (default: ROOT/.upload-secret).",
    ),
) -> None:
    """Serve an OCI distribution-spec v1.1 registry (pull, push, discovery, management)."""
    from mdl.registry.server import ServeConfig
    from mdl.registry.server import serve as run

    config = ServeConfig(
        root=str(_root(root)),
        host=host,
        port=port,
        auth=auth or ("basic" if htpasswd else "none"),
        htpasswd=str(htpasswd) if htpasswd else None,
        policy=str(policy) if policy else None,
        anonymous_pull=tuple(anonymous_pull),
        token_key=str(token_key) if token_key else None,
        token_ttl=token_ttl,
        service=service,
        realm=realm,
        read_only=read_only,
        tls_cert=str(tls_cert) if tls_cert else None,
        tls_key=str(tls_key) if tls_key else None,
        insecure=insecure,
        workers=workers,
        access_log=access_log,
        origins=tuple(origin or _env_origins()),
        max_uploads=max_uploads,
        upload_expiry=upload_expiry,
        storage=storage,
        s3_endpoint=s3_endpoint,
        s3_region=s3_region,
        s3_redirect=_boolean("--s3-redirect", s3_redirect),
        proxy=proxy,
        proxy_user=proxy_user,
        proxy_password_file=str(proxy_password_file) if proxy_password_file else None,
        proxy_ttl=_duration("--proxy-ttl", proxy_ttl),
        ui=ui,
        secret_file=str(secret_file) if secret_file else None,
        drain=drain,
    )
    run(config)


def _boolean(flag: str, text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise typer.BadParameter(f"{flag} takes true or false, not {text!r}")


def _duration(flag: str, text: str) -> float:
    from mdl.spec.duration import seconds

    try:
        return seconds(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=flag) from None


def _env_origins() -> list[str]:
    return [o.strip() for o in os.environ.get("MDL_ORIGINS", "").split(",") if o.strip()]


@registry_app.command()
def gc(
    root: Path | None = ROOT,
    dry_run: bool = typer.Option(False, "--dry-run", help="Report what would be removed."),
    grace_period: int = typer.Option(
        3600, "--grace-period", help="Keep unreferenced blobs younger than this (seconds)."
    ),
    upload_expiry: int = typer.Option(
        86400, "--upload-expiry", help="Remove upload sessions idle longer than this (seconds)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
    storage: str | None = STORAGE,
    s3_endpoint: str | None = S3_ENDPOINT,
    s3_region: str | None = S3_REGION,
) -> None:
    """Remove blobs no manifest references, and expired upload sessions (safe while serving)."""
    from mdl.registry.gc import collect
    from mdl.registry.storage.select import open_storage

    try:
        driver = open_storage(_root(root), storage, s3_endpoint, s3_region, check=True)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--storage") from exc
    report = collect(
        driver,
        grace_period=grace_period,
        upload_expiry=upload_expiry,
        dry_run=dry_run,
    )
    verb = "would remove" if dry_run else "removed"
    console.result(
        report.to_json(),
        as_json,
        lambda: console.line(
            f"{verb} {len(report.blobs)} blobs ({console.human_size(report.bytes_freed)}), "
            f"{report.links} links and {report.uploads} upload sessions; "
            f"kept {report.kept} blobs"
        ),
    )
