"""Signing verbs: ``key generate``, ``sign``, ``discover``, and ``verify REF --key``.

Keys are PEM files; an encrypted private key's passphrase comes from ``MDL_KEY_PASSPHRASE``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer

from mdl.cli import console
from mdl.spec.errors import NotFound, SignatureError
from mdl.spec.reference import Reference
from mdl.store.models import load_model
from mdl.store.store import Store

JSON = typer.Option(False, "--json", help="Print one JSON document instead of text.")
REMOTE = typer.Option(
    False,
    "--remote",
    help="Ask REF's registry even if the store holds REF (a REF with a registry host that the "
    "store lacks is looked up there anyway); no file of the model is downloaded.",
)
INSECURE = typer.Option(
    False, "--insecure", help="For a registry: plain HTTP or unverified TLS (as mdl pull)."
)
PASSPHRASE_ENV = "MDL_KEY_PASSPHRASE"

keys = typer.Typer(help="Make signing keys.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(keys, name="key")
    app.command(help="Sign a model in the store; the signature is attached as an OCI referrer.")(
        sign
    )
    app.command(help="List a model's referrers (signatures, SBOMs, provenance) as a tree.")(
        discover
    )
    app.command(
        help="Check the store (every blob against its digest), or with REF and --key a model's "
        "signatures against the key and its manifest."
    )(verify)


@keys.command("generate", help="Write an ECDSA P-256 key pair: PREFIX.key (0600) and PREFIX.pub.")
def generate(
    out: str = typer.Option("mdl", "--out", metavar="PREFIX", help="Where to write the keys."),
    as_json: bool = JSON,
) -> None:
    from mdl.spec import sigstore

    private_path, public_path = Path(f"{out}.key"), Path(f"{out}.pub")
    for path in (private_path, public_path):
        if path.exists():
            raise SignatureError(f"{path}: exists; remove it or choose another --out")
    key = sigstore.generate_key()
    passphrase = _passphrase()
    descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as private_file:
        private_file.write(sigstore.private_pem(key, passphrase))
    public_path.write_bytes(sigstore.public_pem(key.public_key()))
    console.result(
        {
            "private_key": str(private_path),
            "public_key": str(public_path),
            "hint": sigstore.key_hint(key.public_key()),
            "encrypted": passphrase is not None,
        },
        as_json,
        lambda: console.lines([f"private key: {private_path}", f"public key: {public_path}"]),
    )


def sign(
    ref: str = typer.Argument(..., help="The model reference."),
    key: Path = typer.Option(..., "--key", help="The private key (PEM)."),
    fmt: str = typer.Option(
        "model-signing",
        "--format",
        help="model-signing (every file, OpenSSF model-signing) or cosign (the manifest digest).",
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Also write the signature (a Sigstore bundle) to this file."
    ),
    as_json: bool = JSON,
) -> None:
    from mdl.spec import sigstore
    from mdl.store.signatures import SignatureFormat, bundle_of
    from mdl.store.signatures import sign as sign_model

    try:
        chosen = SignatureFormat(fmt)
    except ValueError:
        raise typer.BadParameter("want model-signing or cosign", param_hint="--format") from None
    reference = Reference.parse(ref)
    private = sigstore.load_private_key(
        _read(key), os.environ.get(PASSPHRASE_ENV, "").encode() or None
    )
    store = Store.open()
    model = load_model(store, reference)
    referrer = sign_model(store, model, reference.name, private, chosen)
    if output is not None:
        output.write_bytes(bundle_of(store, referrer))
    console.result(
        {"digest": str(referrer.digest), "subject": str(model.descriptor.digest), "format": fmt},
        as_json,
        lambda: console.line(
            f"signed {reference} ({model.descriptor.digest.short}): {referrer.digest}"
        ),
    )


def verify(
    ref: str | None = typer.Argument(None, help="A model to check the signatures of."),
    key: Path | None = typer.Option(None, "--key", help="The public key (PEM) to verify with."),
    signatures: list[Path] = typer.Option(
        [], "--signature", help="A detached signature file (a Sigstore bundle); may repeat."
    ),
    remote: bool = REMOTE,
    insecure: bool = INSECURE,
    as_json: bool = JSON,
) -> None:
    if ref is None:
        if key is not None or signatures or remote:
            raise typer.BadParameter("--key, --signature and --remote need a model reference")
        _verify_store(as_json)
    elif key is None:
        raise typer.BadParameter("checking a model's signatures needs --key", param_hint="--key")
    else:
        _verify_signatures(ref, key, signatures, as_json, remote=remote, insecure=insecure)


def _verify_store(as_json: bool) -> None:
    problems = Store.open().verify()
    console.result(
        {"problems": problems},
        as_json,
        lambda: console.lines(problems or ["the store holds only complete, verified content"]),
    )
    if problems:
        raise typer.Exit(1)


def _verify_signatures(
    ref: str, key: Path, signatures: list[Path], as_json: bool, *, remote: bool, insecure: bool
) -> None:
    """The model's signatures against the key and the manifest; no blob is read."""
    from mdl.spec import sigstore
    from mdl.store.signatures import verify

    public = sigstore.load_public_key(_read(key))
    detached = [_read(path) for path in signatures]
    reference = Reference.parse(ref)
    store = Store.open()
    remote_used = _on_registry(store, reference, remote)
    if remote_used:
        from mdl.client.trust import verify_remote

        subject, verified = verify_remote(reference, public, detached, insecure=insecure)
    else:
        model = load_model(store, reference)
        subject, verified = model.descriptor, verify(store, model, public, detached)
    rows = [
        {
            "signature": str(v.signature) if v.signature else None,
            "predicate_type": v.predicate_type,
            "files": list(v.files),
            "unsigned": list(v.unsigned),
        }
        for v in verified
    ]
    console.result(
        {"digest": str(subject.digest), "remote": remote_used, "verified": rows},
        as_json,
        lambda: console.lines(_verified_lines(rows)),
    )


def _verified_lines(rows: list[dict[str, Any]]) -> list[str]:
    lines = []
    for row in rows:
        lines.append(f"verified: {row['predicate_type']} signature {row['signature'] or '(file)'}")
        if row["unsigned"]:
            lines.append(f"  not covered by it: {', '.join(row['unsigned'])}")
    return lines


def discover(
    ref: str = typer.Argument(..., help="The model reference."),
    remote: bool = REMOTE,
    insecure: bool = INSECURE,
    as_json: bool = JSON,
) -> None:
    from mdl.store.signatures import referrer_tree

    reference = Reference.parse(ref)
    store = Store.open()
    if _on_registry(store, reference, remote):
        from mdl.client.trust import discover_remote

        tree = discover_remote(reference, insecure=insecure)
    else:
        tree = referrer_tree(store, load_model(store, reference).descriptor)
    console.result(tree, as_json, lambda: console.lines(_tree_lines(tree)))


def _on_registry(store: Store, ref: Reference, remote: bool) -> bool:
    """Whether to look ``ref`` up on its registry: asked to, or it names a registry host and
    the store does not hold it."""
    if remote:
        return True
    if ref.registry is None:
        return False
    try:
        store.resolve(ref)
    except NotFound:
        return True
    return False


def _tree_lines(node: dict[str, Any], depth: int = 0) -> list[str]:
    kind = node.get("artifactType") or node["mediaType"]
    lines = [f"{'    ' * depth}{'└── ' if depth else ''}{kind} {node['digest']} ({node['size']} B)"]
    for key, value in sorted(node.get("annotations", {}).items()):
        lines.append(f"{'    ' * (depth + 1)}  {key}: {value}")
    for child in node.get("referrers", []):
        lines += _tree_lines(child, depth + 1)
    return lines


def _passphrase() -> bytes | None:
    return os.environ.get(PASSPHRASE_ENV, "").encode() or None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SignatureError(f"{path}: {exc.strerror}") from None
