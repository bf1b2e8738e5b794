"""Verbs on the local store: list, show, tag, rm, inspect, prune, export."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from mdl.cli import console, listing
from mdl.spec import mediatypes as mt
from mdl.spec.descriptor import Descriptor
from mdl.spec.manifest import Index
from mdl.spec.reference import Reference
from mdl.spec.variants import Variant, variants_of
from mdl.store.models import load_manifest, load_model, model_descriptor
from mdl.store.store import Store

JSON = typer.Option(False, "--json", help="Print one JSON document instead of text.")


def register(app: typer.Typer) -> None:
    app.command("list", help="List the models in the local store.")(list_models)
    app.command("ls", hidden=True, help="Alias of list.")(list_models)
    app.command(help="Show a model's details, parameters, template, system prompt and license.")(
        show
    )
    app.command(help="Give a model another name (SRC and DST are references).")(tag)
    app.command(help="Remove models; blobs no other model uses are freed.")(rm)
    app.command(help="Print a model's raw manifest and config.")(inspect)
    app.command(help="Free unreferenced blobs and leftover temporary files.")(prune)
    app.command(help="Unpack a model's files (model.gguf, template, params.json, ...) into DIR.")(
        export
    )


def list_models(
    as_json: bool = JSON,
    all_variants: bool = typer.Option(
        False, "--all-variants", help="Also list each variant of an index, under it."
    ),
) -> None:
    store = Store.open()
    rows: list[dict[str, Any]] = []
    cells: list[list[str]] = []
    now = datetime.now(UTC)
    indexes = False
    for tagged in store.tags():
        desc = tagged.descriptor
        size = sum(store.blob_size(d) for d in store.closure(desc))
        modified = store.modified_at(desc.digest)
        row: dict[str, Any] = {
            "name": tagged.reference,
            "digest": str(desc.digest),
            "media_type": desc.media_type,
            "size": size,
            "modified_at": _iso(modified),
        }
        line = [
            tagged.reference,
            desc.digest.hex[:12],
            listing.human_bytes(size),
            listing.human_time(modified, now),
        ]
        variants = _variants(store, desc)
        children: list[list[str]] = []
        if variants is not None:
            indexes = True
            present = [store.exists(v.descriptor) for v in variants]
            row["variants"], row["variants_present"] = len(variants), sum(present)
            line.append(listing.variant_count(len(variants), sum(present)))
            entries = [
                _variant_row(store, v, here) for v, here in zip(variants, present, strict=True)
            ]
            if all_variants:
                row["variant_list"] = entries
                children = listing.variant_rows(entries, now)
        rows.append(row)
        cells.append(line)
        cells += children
    columns = ["NAME", "ID", "SIZE", "MODIFIED"] + (["VARIANTS"] if indexes else [])
    if indexes:
        cells = [c + [""] * (len(columns) - len(c)) for c in cells]
    console.result({"models": rows}, as_json, lambda: console.lines(listing.table(columns, cells)))


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _variants(store: Store, desc: Descriptor) -> list[Variant] | None:
    """The variants of an index entry; None for a model (or an index of something else)."""
    if desc.media_type not in mt.INDEX_TYPES or not store.has_blob(desc.digest):
        return None
    index = store.read_manifest(desc)
    assert isinstance(index, Index)
    return variants_of(index) or None


def _variant_row(store: Store, variant: Variant, present: bool) -> dict[str, Any]:
    row: dict[str, Any] = {**variant.to_json(), "present": present}
    if present:
        row["size"] = sum(store.blob_size(d) for d in store.closure(variant.descriptor))
        row["modified_at"] = _iso(store.modified_at(variant.descriptor.digest))
    return row


def show(
    ref: str = typer.Argument(..., help="The model reference."),
    modelfile: bool = typer.Option(False, "--modelfile", help="Print the Modelfile."),
    template: bool = typer.Option(False, "--template", help="Print the chat template."),
    system: bool = typer.Option(False, "--system", help="Print the system prompt."),
    parameters: bool = typer.Option(False, "--parameters", help="Print the parameters."),
    license_: bool = typer.Option(False, "--license", help="Print the license(s)."),
    variant: str | None = typer.Option(
        None, "--variant", metavar="TYPE", help="Of an index, show this variant."
    ),
    as_json: bool = JSON,
) -> None:
    from mdl.builder.show import model_modelfile, model_summary

    store = Store.open()
    desc, choice = model_descriptor(store, Reference.parse(ref), variant=variant)
    model = load_manifest(store, desc)
    summary = model_summary(model)
    if choice is not None:
        summary["variants"] = [
            {
                **v.to_json(),
                "present": str(v.descriptor.digest) in choice.present,
                "chosen": v == choice.chosen,
            }
            for v in choice.variants
        ]
    if modelfile:
        console.line(model_modelfile(model).rstrip("\n"))
    elif template:
        console.line(summary["template"] or "")
    elif system:
        console.line(summary["system"] or "")
    elif parameters:
        console.line(json.dumps(summary["parameters"], indent=2))
    elif license_:
        console.line("\n\n".join(summary["licenses"]))
    else:
        console.result(summary, as_json, lambda: _print_summary(summary))


def _print_summary(summary: dict[str, Any]) -> None:
    console.line("  Model")
    for label, key in (
        ("architecture", "architecture"),
        ("format", "format"),
        ("parameters", "parameter_size"),
        ("context length", "context_length"),
        ("quantization", "quantization"),
        ("digest", "digest"),
    ):
        if summary.get(key) is not None:
            console.line(f"    {label:<20}{summary[key]}")
    if summary.get("variants"):
        console.line("\n  Variants")
        for v in summary["variants"]:
            mark = "*" if v["chosen"] else " "
            state = "" if v["present"] else "   not pulled"
            needs = listing.human_bytes(v["memory"])
            console.line(
                f"  {mark} {v['quantization']:<10}{listing.human_bytes(v['file_size']):>8}   "
                f"needs {needs:<8}{v['digest'][7:19]}{state}"
            )
    if summary["adapters"]:
        console.line("\n  Adapters")
        for adapter in summary["adapters"]:
            console.line(f"    {adapter}")
    if summary["parameters"]:
        console.line("\n  Parameters")
        for name, value in summary["parameters"].items():
            values = value if isinstance(value, list) else [value]
            for item in values:
                console.line(f"    {name:<20}{json.dumps(item)}")
    for title, key in (("System", "system"), ("Template", "template")):
        if summary[key]:
            console.line(f"\n  {title}")
            for text in summary[key].splitlines()[:6]:
                console.line(f"    {text}")
    if summary["licenses"]:
        console.line("\n  License")
        for text in summary["licenses"][0].splitlines()[:4]:
            console.line(f"    {text}")


def tag(
    source: str = typer.Argument(..., metavar="SRC"),
    target: str = typer.Argument(..., metavar="DST"),
) -> None:
    store = Store.open()
    store.tag(store.resolve(Reference.parse(source)), Reference.parse(target))


def rm(
    refs: list[str] = typer.Argument(..., metavar="REF...", help="Models to remove."),
    as_json: bool = JSON,
) -> None:
    parsed = [Reference.parse(ref) for ref in refs]
    removed, report = Store.open().remove(parsed)
    console.result(
        {
            "removed": [{"name": t.reference, "digest": str(t.descriptor.digest)} for t in removed],
            "blobs_freed": len(report.blobs),
            "bytes_freed": report.bytes_freed,
        },
        as_json,
        lambda: console.lines(f"deleted '{t.reference}'" for t in removed),
    )


def inspect(ref: str = typer.Argument(..., help="The model reference.")) -> None:
    store = Store.open()
    desc = store.resolve(Reference.parse(ref))
    document = json.loads(store.read_blob(desc))
    doc: dict[str, Any] = {"digest": str(desc.digest), "mediaType": desc.media_type}
    doc["manifest"] = document
    config = document.get("config")
    if isinstance(config, dict) and "digest" in config:
        model = load_manifest(store, desc)
        doc["config"] = json.loads(store.read_blob(model.manifest.config))
    console.emit_json(doc)


def prune(
    dry_run: bool = typer.Option(False, "--dry-run", help="Report what would be freed."),
    as_json: bool = JSON,
) -> None:
    report = Store.open().prune(dry_run=dry_run)
    verb = "would free" if dry_run else "freed"
    console.result(
        {
            "dry_run": dry_run,
            "blobs": [str(d) for d in report.blobs],
            "bytes_freed": report.bytes_freed,
            "temporary_files": report.ingest_files,
        },
        as_json,
        lambda: console.line(
            f"{verb} {len(report.blobs)} blobs ({console.human_size(report.bytes_freed)}) "
            f"and {report.ingest_files} temporary files"
        ),
    )


def export(
    ref: str = typer.Argument(..., help="The model reference."),
    directory: Path = typer.Argument(..., metavar="DIR", help="Where to write the files."),
    kinds: str | None = typer.Option(
        None,
        "--filter",
        metavar="KINDS",
        help="Only these kinds of files, comma-separated: model, adapter, projector, draft, "
        "template, system, params, messages, license, modelfile, other.",
    ),
    as_json: bool = JSON,
) -> None:
    from mdl.builder.export import export_model
    from mdl.builder.kinds import parse_kinds

    wanted = parse_kinds(kinds) if kinds is not None else None
    model = load_model(Store.open(), Reference.parse(ref))
    written = export_model(model, directory, wanted)
    console.result(
        {"directory": str(directory), "files": [str(p) for p in written]},
        as_json,
        lambda: console.lines(str(p) for p in written),
    )
