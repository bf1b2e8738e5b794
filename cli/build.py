"""``mdl build``: a Modelfile into a model in the local store."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import typer

from mdl.cli import console
from mdl.spec.errors import BuildError, ModelfileError
from mdl.spec.modelfile import decode_modelfile, parse_modelfile
from mdl.spec.reference import Reference
from mdl.store.store import Store


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
    as_json: bool = typer.Option(False, "--json", help="Print digest, size and layers as JSON."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Print only the digest."),
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
        console.error(f"{file}:{instruction.line}: warning: parameter {instruction.key} is ignored")
    options = BuildOptions(created=_created(timestamp), labels=_labels(labels))
    with console.progress(enabled=not (quiet or as_json)) as progress:
        result = build_model(Store.open(), modelfile, context, refs, options, progress)
    if iidfile:
        iidfile.write_text(str(result.descriptor.digest))
    if quiet:
        console.line(str(result.descriptor.digest))
        return
    console.result(
        build_json(result),
        as_json,
        lambda: console.lines(
            [f"built {result.descriptor.digest}"] + [f"tagged {t}" for t in result.tags]
        ),
    )


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
