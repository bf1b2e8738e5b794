"""``mdl build``: a Modelfile into a model in the local store."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mdl.cli import console
from mdl.spec.errors import BuildError, ModelfileError
from mdl.spec.modelfile import decode_modelfile, parse_modelfile
from mdl.spec.reference import Reference
from mdl.store.store import Store

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

    from mdl.builder.attest import Attached
    from mdl.builder.build import BuildOptions, BuildResult
    from mdl.spec.modelfile import Modelfile


def register(app: typer.Typer) -> None:
    app.command(help="Build a model from a Modelfile into the local store.")(build)


def build(
    tags: list[str] = typer.Option(
        [], "-t", "--tag", help="Name the model (repeatable): [host/][ns/]name[:tag]."
    ),
    file: str = typer.Option(
        "Modelfile", "-f", "--file", help="The Modelfile; '-' reads standard input."
    ),
    labels: list[str] = typer.Option(
        [], "--label", help="Manifest annotation key=value (repeatable)."
    ),
    timestamp: bool = typer.Option(
        False,
        "--timestamp",
        help="Record the build time (else only SOURCE_DATE_EPOCH is recorded; builds reproduce).",
    ),
    iidfile: Path | None = typer.Option(
        None, "--iidfile", help="Write the manifest digest to this file."
    ),
    quantize: str | None = typer.Option(
        None,
        "--quantize",
        metavar="TYPE",
        help="Quantize F32/F16/BF16 weights with llama.cpp: q4_0, q4_1, q5_0, q5_1, q8_0, "
        "q2_K, q3_K_S, q3_K_M, q3_K_L, q4_K_S, q4_K_M, q5_K_S, q5_K_M, q6_K, f16 or bf16 "
        "(K-quants need rows that are multiples of 256). A rebuild reuses the result.",
    ),
    variants: str | None = typer.Option(
        None,
        "--variants",
        metavar="TYPE,...",
        help="Build one variant per quantization (e.g. q4_K_M,q8_0,f16) and tag an OCI index of "
        "them: pull and serve choose the best that fits the machine's memory.",
    ),
    provenance: bool = typer.Option(
        False, "--provenance", help="Attach an in-toto SLSA provenance v1 statement (a referrer)."
    ),
    sbom: bool = typer.Option(
        False, "--sbom", help="Attach a CycloneDX 1.6 ML-BOM of the model (a referrer)."
    ),
    sign_key: Path | None = typer.Option(
        None,
        "--sign",
        metavar="KEY",
        help="Sign the model (OpenSSF model-signing) and each attestation (cosign) with this "
        "private key; MDL_KEY_PASSPHRASE unlocks an encrypted one.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print digest, size and layers as JSON."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Print only the digest."),
    push: bool = typer.Option(
        False, "--push", help="Push every -t reference after the build (as mdl push does)."
    ),
    insecure: bool = typer.Option(
        False, "--insecure", help="With --push: plain HTTP even for a non-loopback registry."
    ),
) -> None:
    from mdl.builder.build import BuildOptions, build_json, build_model  # heavy: only to build

    refs = [Reference.parse(tag) for tag in tags]
    if file == "-":
        modelfile = parse_modelfile(decode_modelfile(sys.stdin.buffer.read(), "-"), "-")
        context = Path.cwd()
    else:
        path = Path(file)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelfileError(file, 0, f"cannot read: {exc.strerror}") from exc
        modelfile = parse_modelfile(decode_modelfile(data, file), file)
        context = path.parent
    for instruction in modelfile.deprecated_parameters:
        console.warning(f"{file}:{instruction.line}: parameter {instruction.key} is ignored")
    options = BuildOptions(created=_created(timestamp), labels=_labels(labels), quantize=quantize)
    key = _signing_key(sign_key) if sign_key else None
    silent = quiet or as_json
    if variants is not None:
        if provenance or sbom or key:
            raise BuildError("--variants cannot be combined with --provenance, --sbom or --sign")
        digest, summary, done = _build_variants(modelfile, context, refs, variants, options, silent)
    else:
        with console.progress(enabled=not silent) as progress:
            result = build_model(Store.open(), modelfile, context, refs, options, progress)
        attached = _attest(result, modelfile, options, provenance, sbom, key)
        digest = str(result.descriptor.digest)
        summary = {
            **build_json(result),
            "attached": [{"kind": a.kind, "digest": str(a.digest)} for a in attached],
        }
        done = (
            [f"built {digest}"]
            + [f"tagged {t}" for t in result.tags]
            + [f"attached {a.kind} {a.digest}" for a in attached]
        )
    if iidfile:
        iidfile.write_text(digest)
    pushed = _push(refs, insecure, silent) if push else []
    if quiet:
        console.line(digest)
        return
    console.result(
        {**summary, "pushed": pushed},
        as_json,
        lambda: console.lines(done + [f"pushed {p['reference']}" for p in pushed]),
    )


def _build_variants(
    modelfile: Modelfile,
    context: Path,
    refs: list[Reference],
    variants: str,
    options: BuildOptions,
    silent: bool,
) -> tuple[str, dict[str, object], list[str]]:
    from mdl.builder.variants import build_variants, index_json

    types = [t.strip() for t in variants.split(",") if t.strip()]
    with console.progress(enabled=not silent) as progress:
        result = build_variants(Store.open(), modelfile, context, refs, types, options, progress)
    digest = str(result.descriptor.digest)
    done = (
        [f"built {v.quantization} {v.descriptor.digest}" for v in result.variants]
        + [f"indexed {digest}"]
        + [f"tagged {t}" for t in result.tags]
    )
    return digest, index_json(result), done


def _signing_key(path: Path) -> ec.EllipticCurvePrivateKey:
    from mdl.spec import sigstore

    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise BuildError(f"--sign {path}: {exc.strerror}") from None
    passphrase = os.environ.get("MDL_KEY_PASSPHRASE", "").encode() or None
    return sigstore.load_private_key(pem, passphrase)


def _attest(
    result: BuildResult,
    modelfile: Modelfile,
    options: BuildOptions,
    provenance: bool,
    sbom: bool,
    key: ec.EllipticCurvePrivateKey | None,
) -> list[Attached]:
    if not (provenance or sbom or key):
        return []
    from mdl.builder.attest import attach, facts_of

    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    store = Store.open()
    facts = facts_of(store, result, modelfile, options.labels, int(epoch) if epoch else None)
    return attach(store, result, facts, provenance=provenance, sbom=sbom, key=key)


def _push(refs: list[Reference], insecure: bool, silent: bool) -> list[dict[str, object]]:
    from mdl.client.transfer import push

    if not refs:
        raise BuildError("--push needs at least one -t reference")
    store, pushed = Store.open(), []
    for ref in refs:
        with console.progress(enabled=not silent) as progress:
            report = push(store, ref, insecure=insecure, progress=progress)
        pushed.append(
            {
                "reference": str(ref.with_registry()),
                "digest": report.digest,
                "bytes_transferred": report.bytes_transferred,
                "bytes_skipped": report.bytes_skipped,
            }
        )
    return pushed


def _created(timestamp: bool) -> str | None:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        try:
            moment = datetime.fromtimestamp(int(epoch), UTC)
        except ValueError as exc:
            raise BuildError(f"SOURCE_DATE_EPOCH={epoch!r} is not a whole number") from exc
    elif timestamp:
        moment = datetime.now(UTC).replace(microsecond=0)
    else:
        return None
    return moment.isoformat().replace("+00:00", "Z")


def _labels(pairs: list[str]) -> dict[str, str]:
    labels = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise BuildError(f"--label {pair!r}: want key=value")
        labels[key] = value
    return labels
