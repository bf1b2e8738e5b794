"""``mdl import ollama`` (another tool's models into the store) and ``mdl diff`` (two models)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mdl.cli import console
from mdl.spec.errors import MdlError
from mdl.spec.reference import Reference
from mdl.store.models import load_model
from mdl.store.store import Store

if TYPE_CHECKING:
    from mdl.builder.ollama_import import Imported

JSON = typer.Option(False, "--json", help="Print one JSON document instead of text.")

importing = typer.Typer(
    help="Import the models of another tool's local store, over the same blobs.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(importing, name="import")
    app.command(
        help="Compare two models: layers, config, parameters, template and system prompt. "
        "Exits 0 when identical, 1 when they differ, 2 on error."
    )(diff)


@importing.command(
    "ollama",
    help="Import every model of a local Ollama store under its own name, over the same blobs "
    "(hard links where the file system allows, else copies; every digest verified).",
)
def ollama(
    directory: Path | None = typer.Argument(
        None,
        metavar="[DIR]",
        help="Ollama's models directory (default $OLLAMA_MODELS, else ~/.ollama/models).",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be imported."),
    as_json: bool = JSON,
) -> None:
    from mdl.builder.ollama_import import default_dir, import_store

    source = directory or default_dir()
    results = []
    for result in import_store(Store.open(), source, dry_run=dry_run):
        results.append(result)
        if not as_json:
            _report(result)
    if as_json:
        console.emit_json({"directory": str(source), "models": [r.to_json() for r in results]})
    if any(r.status == "failed" for r in results):
        raise typer.Exit(1)


def _report(result: Imported) -> None:
    if result.error:
        console.error(f"{result.name}: {result.error}")
        return
    blobs = f"{result.linked} linked, {result.copied} copied, {result.present} already stored"
    detail = "" if result.status == "would import" else f" ({blobs})"
    console.line(f"{result.status} {result.name}{detail}")
    for warning in result.warnings:
        console.warning(f"{result.name}: {warning}")


def diff(
    first: str = typer.Argument(..., metavar="A", help="A model reference."),
    second: str = typer.Argument(..., metavar="B", help="Another model reference."),
    as_json: bool = JSON,
) -> None:
    from mdl.builder.diff import diff_models, diff_text

    store = Store.open()
    try:
        a = load_model(store, Reference.parse(first))
        b = load_model(store, Reference.parse(second))
        report = diff_models(a, b, (first, second))
    except MdlError as exc:  # diff(1): 2 is trouble, 1 is a difference
        console.error(str(exc))
        raise typer.Exit(2) from exc
    console.result(report.to_json(), as_json, lambda: console.lines(diff_text(report)))
    raise typer.Exit(0 if report.identical else 1)  # as diff(1)
