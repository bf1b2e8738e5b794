"""``mdl index create``: group models already in the store under one reference as an OCI image
index of variants (``mdl build --variants`` builds and groups in one step)."""

from __future__ import annotations

import typer

from mdl.cli import console
from mdl.spec.reference import Reference
from mdl.store.store import Store

index_app = typer.Typer(
    help="OCI image indexes of model variants (one reference, many quantizations).",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(index_app, name="index")


@index_app.command(help="Tag an index of the models REF... (one per quantization) as NAME.")
def create(
    name: str = typer.Argument(..., metavar="NAME", help="The index's reference."),
    refs: list[str] = typer.Argument(..., metavar="REF...", help="The variant models."),
    as_json: bool = typer.Option(False, "--json", help="Print the index and its variants."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Print only the digest."),
) -> None:
    from mdl.builder.variants import create_index, index_json

    result = create_index(
        Store.open(), [Reference.parse(ref) for ref in refs], [Reference.parse(name)]
    )
    if quiet:
        console.line(str(result.descriptor.digest))
        return
    console.result(
        index_json(result),
        as_json,
        lambda: console.lines(
            [f"{v.quantization:<8} {v.descriptor.digest}" for v in result.variants]
            + [f"indexed {result.descriptor.digest}", f"tagged {name}"]
        ),
    )
