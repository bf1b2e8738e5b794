"""``mdl pull``, ``push``, ``login`` and ``logout``."""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mdl.cli import console
from mdl.spec.errors import MdlError
from mdl.spec.foreign import FORMATS
from mdl.spec.reference import Reference
from mdl.store.store import Store

if TYPE_CHECKING:
    from mdl.client.copy import CopyReport

INSECURE = typer.Option(
    False,
    "--insecure",
    help="Plain HTTP even for a non-loopback registry (also MDL_INSECURE_REGISTRIES).",
)
JSON = typer.Option(
    False,
    "--json",
    help="Print digest, bytes and blobs transferred and skipped, and referrers as JSON.",
)
QUIET = typer.Option(False, "-q", "--quiet", help="Print only the digest.")


def register(app: typer.Typer) -> None:
    app.command(
        "pull",
        help="Fetch a model and its referrers (signatures) from a registry into the local store, "
        "if the trust policy accepts it (resumes).",
    )(pull_cmd)
    app.command("push", help="Send a local model and its referrers (signatures) to a registry.")(
        push_cmd
    )
    app.command(help="Store credentials for a registry (password read from stdin).")(login)
    app.command(help="Forget the stored credentials for a registry.")(logout)
    app.command(help="Write models to an offline archive (OCI layout tar; .zst compresses).")(save)
    app.command(help="Read models from an archive written by mdl save (or any OCI layout tar).")(
        load
    )


def pull_cmd(
    ref: str = typer.Argument(..., help="[host[:port]/][ns/]name[:tag][@digest]"),
    insecure: bool = INSECURE,
    policy_file: Path | None = typer.Option(
        None,
        "--policy",
        metavar="FILE",
        help="The trust policy to check the model against "
        "(default: MDL_POLICY, else $MDL_HOME/policy.json; none accepts anything).",
    ),
    variant: str | None = typer.Option(
        None,
        "--variant",
        metavar="TYPE",
        help="Of an index of variants, fetch this quantization (e.g. q4_K_M) instead of the "
        "best that fits the memory (MemAvailable, or MDL_MEMORY_LIMIT: 8GB, 512MiB, bytes).",
    ),
    all_variants: bool = typer.Option(
        False, "--all-variants", help="Of an index of variants, fetch every variant."
    ),
    as_json: bool = JSON,
    quiet: bool = QUIET,
) -> None:
    from mdl.client.transfer import pull
    from mdl.store.signatures import load_policy

    reference = Reference.parse(ref)
    policy = load_policy(policy_file)
    with console.progress(enabled=not (quiet or as_json)) as progress:
        report = pull(
            Store.open(),
            reference,
            insecure=insecure,
            progress=progress,
            policy=policy,
            variant=variant,
            all_variants=all_variants,
        )
    _report(report, as_json, quiet, f"pulled {reference.with_registry()}")


def push_cmd(
    ref: str = typer.Argument(..., help="The local model."),
    destination: str | None = typer.Argument(
        None, metavar="[DEST]", help="Where to push it, if not to REF itself."
    ),
    fmt: str = typer.Option(
        "mdl",
        "--format",
        help="mdl (CNCF ModelPack), ollama (for ollama pull) or docker (Docker Model Runner).",
    ),
    insecure: bool = INSECURE,
    as_json: bool = JSON,
    quiet: bool = QUIET,
) -> None:
    from mdl.client.transfer import push

    if fmt not in FORMATS:
        raise MdlError(f"--format {fmt!r}: want one of {', '.join(FORMATS)}")
    source = Reference.parse(ref)
    target = Reference.parse(destination) if destination else source
    with console.progress(enabled=not (quiet or as_json)) as progress:
        report = push(Store.open(), source, target, insecure=insecure, fmt=fmt, progress=progress)
    _report(report, as_json, quiet, f"pushed {target.with_registry()}")


def _report(report: CopyReport, as_json: bool, quiet: bool, done: str) -> None:
    if quiet:
        console.line(report.digest)
        return
    console.result(
        asdict(report),
        as_json,
        lambda: console.lines(
            [
                f"{done}: {report.digest}",
                f"{console.human_size(report.bytes_transferred)} transferred, "
                f"{console.human_size(report.bytes_skipped)} already present"
                + (f", {report.referrers} referrers" if report.referrers else ""),
            ]
            + ([f"variants: {', '.join(report.variants)}"] if report.variants else [])
        ),
    )


def login(
    host: str = typer.Argument(..., help="The registry, host[:port]."),
    username: str = typer.Option(..., "-u", "--username"),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from standard input."
    ),
    insecure: bool = INSECURE,
) -> None:
    from mdl.client import credentials
    from mdl.client.transfer import check_login

    if not password_stdin:
        raise MdlError("give the password on standard input with --password-stdin")
    password = sys.stdin.readline().rstrip("\r\n")
    found = credentials.Credentials(username, password)
    host = credentials.canonical_host(host)
    check_login(host, found, insecure=insecure)
    credentials.save(host, found)
    console.line(f"Login Succeeded: {username} at {host}")


def logout(host: str = typer.Argument(..., help="The registry, host[:port].")) -> None:
    from mdl.client import credentials

    host = credentials.canonical_host(host)
    if not credentials.forget(host):
        raise MdlError(f"not logged in to {host}")
    console.line(f"Removed login credentials for {host}")


def save(
    refs: list[str] = typer.Argument(..., metavar="REF...", help="Models to save."),
    output: Path = typer.Option(..., "-o", "--output", help="The archive; .zst compresses."),
) -> None:
    from mdl.store import archive

    entries = archive.save(Store.open(), [Reference.parse(ref) for ref in refs], output)
    console.line(f"saved {len(entries)} models to {output}")


def load(
    archive_path: Path = typer.Option(..., "-i", "--input", help="An archive from mdl save."),
) -> None:
    from mdl.store import archive

    for name in archive.load(Store.open(), archive_path):
        console.line(f"loaded {name}")
