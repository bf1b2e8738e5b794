"""An index of variants in the local store through the real CLI: build --variants, index create,
list, show, tag, rm, save/load, and skopeo reading the store."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cli_runner import MdlRunner
from variant_models import build_index, store_blobs, variants_workdir

from mdl.spec.footprint import context_of, estimate_bytes, shape_of
from mdl.spec.gguf import read_gguf_file


@pytest.fixture
def work(tmp_path: Path) -> Path:
    return variants_workdir(tmp_path)


@pytest.fixture
def built(mdl: MdlRunner, work: Path) -> dict[str, Any]:
    return build_index(mdl, work)


def _blob(home: Path, digest: str) -> Path:
    return home / "store" / "blobs" / "sha256" / digest.removeprefix("sha256:")


def test_the_index_lists_each_variant_with_what_choosing_it_needs(
    mdl: MdlRunner, mdl_home: Path, built: dict[str, Any]
) -> None:
    index = json.loads(_blob(mdl_home, built["digest"]).read_bytes())
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert [m["annotations"]["dev.mdl.variant.quantization"] for m in index["manifests"]] == [
        "F16", "Q8_0", "Q4_K_M",
    ]  # fmt: skip
    for entry, variant in zip(index["manifests"], built["variants"], strict=True):
        notes = entry["annotations"]
        manifest = mdl("inspect", f"wide@{entry['digest']}").json()
        layers = manifest["manifest"]["layers"]
        weights = next(
            lay for lay in layers if lay["annotations"]["org.cncf.model.filepath"] == "model.gguf"
        )
        info = read_gguf_file(_blob(mdl_home, weights["digest"]))
        num_ctx, num_batch = context_of({"num_ctx": 256}, info.context_length)
        shape = shape_of(info, weights["size"])
        need = estimate_bytes(shape, num_ctx, num_batch, sequences=4)  # mdl serve's default
        assert notes == {
            "dev.mdl.variant.context-length": "512",
            "dev.mdl.variant.file-size": str(sum(lay["size"] for lay in layers)),
            "dev.mdl.variant.memory": str(need),
            "dev.mdl.variant.num-ctx": "256",
            "dev.mdl.variant.parameter-size": manifest["config"]["config"]["paramSize"],
            "dev.mdl.variant.quantization": manifest["config"]["config"]["quantization"],
        }
        assert variant["memory"] == need and variant["digest"] == entry["digest"]
        shown = mdl("show", f"wide@{entry['digest']}", "--json").json()
        assert shown["quantization"] == notes["dev.mdl.variant.quantization"]


def test_the_same_models_give_the_same_index_digest(
    mdl: MdlRunner, work: Path, built: dict[str, Any]
) -> None:
    again = mdl(
        "build", "--variants", "f16,q4_K_M,q8_0", "-t", "wide:again", "--json", cwd=work
    ).json()
    assert again["digest"] == built["digest"]
    for qtype in ("q8_0", "f16", "q4_K_M"):
        mdl("build", "-q", "--quantize", qtype, "-t", f"wide:{qtype}", cwd=work)
    grouped = mdl(
        "index", "create", "grouped:1", "wide:f16", "wide:q4_K_M", "wide:q8_0", "--json"
    ).json()
    assert grouped["digest"] == built["digest"]
    assert (
        mdl(
            "index", "create", "-q", "grouped:2", "wide:q8_0", "wide:q4_K_M", "wide:f16"
        ).out.strip()
        == built["digest"]
    )


def test_bad_variant_requests_are_clear_errors(
    mdl: MdlRunner, work: Path, built: dict[str, Any]
) -> None:
    cases = [
        (("build", "--variants", "q4_K_M,q9_9", "-t", "x"), "--quantize q9_9: unknown type"),
        (
            ("build", "--variants", "q8_0", "--quantize", "q8_0", "-t", "x"),
            "--variants and --quantize exclude each other",
        ),
        (
            ("build", "--variants", "q8_0", "--sbom", "-t", "x"),
            "--variants cannot be combined",
        ),
        (("index", "create", "x:1", "wide:v"), "wide:v: is an index; name its variants one by one"),
        (("show", "wide:v", "--variant", "q2_K"), "no variant q2_K; it has F16, Q8_0, Q4_K_M"),
    ]
    for args, message in cases:
        failed = mdl(*args, cwd=work, ok=False)
        assert failed.code == 2 and message in failed.err, (args, failed.err)
        assert "Traceback" not in failed.err
    mdl("build", "-q", "--quantize", "q8_0", "-t", "one:a", cwd=work)
    (work / "Other").write_text("FROM ./wide.gguf\nPARAMETER num_ctx 128\n")
    mdl("build", "-q", "-f", "Other", "--quantize", "q8_0", "-t", "one:b", cwd=work)
    twice = mdl("index", "create", "x:1", "one:a", "one:b", ok=False)
    assert twice.code == 2 and "two variants are Q8_0" in twice.err
    assert "x:1" not in mdl("list").out


def test_list_shows_an_index_as_one_name_and_all_variants_under_it(
    mdl: MdlRunner, mdl_home: Path, built: dict[str, Any]
) -> None:
    rows = mdl("list", "--json").json()["models"]
    assert [(r["name"], r["variants"], r["variants_present"]) for r in rows] == [("wide:v", 3, 3)]
    assert "variant_list" not in rows[0]
    assert rows[0]["size"] == sum(_blob(mdl_home, d).stat().st_size for d in store_blobs(mdl_home))
    lines = mdl("list").out.splitlines()
    assert lines[0].split() == ["NAME", "ID", "SIZE", "MODIFIED", "VARIANTS"]
    assert len(lines) == 2 and lines[1].split()[0] == "wide:v" and lines[1].endswith("3")
    tree = mdl("list", "--all-variants").out.splitlines()
    assert [line.split()[:2] for line in tree[2:]] == [
        ["├─", "F16"],
        ["├─", "Q8_0"],
        ["└─", "Q4_K_M"],
    ]
    detailed = mdl("list", "--all-variants", "--json").json()["models"][0]["variant_list"]
    assert [(v["quantization"], v["present"], v["digest"]) for v in detailed] == [
        (v["quantization"], True, v["digest"]) for v in built["variants"]
    ]


def test_show_marks_the_variant_the_budget_chooses(mdl: MdlRunner, built: dict[str, Any]) -> None:
    for variant in built["variants"]:
        env = {"MDL_MEMORY_LIMIT": str(variant["memory"])}
        shown = mdl("show", "wide:v", "--json", env=env).json()
        assert shown["digest"] == variant["digest"]
        assert [v["chosen"] for v in shown["variants"]] == [
            v["digest"] == variant["digest"] for v in built["variants"]
        ]
        text = mdl("show", "wide:v", env=env).out
        assert f"* {variant['quantization']}" in text
    by_hand = mdl("show", "wide:v", "--variant", "q8_0", "--json").json()
    assert by_hand["quantization"] == "Q8_0"


def test_tag_and_rm_of_an_index_free_its_variants_only_when_unused(
    mdl: MdlRunner, mdl_home: Path, work: Path, built: dict[str, Any]
) -> None:
    mdl("tag", "wide:v", "mirror/wide:v")
    mdl("build", "-q", "--quantize", "q8_0", "-t", "solo:q8", cwd=work)
    everything = store_blobs(mdl_home)
    removed = mdl("rm", "wide:v", "--json").json()
    assert removed["blobs_freed"] == 0 and store_blobs(mdl_home) == everything
    assert mdl("show", "mirror/wide:v", "--json").json()["digest"] == built["variants"][0]["digest"]
    removed = mdl("rm", "mirror/wide:v", "--json").json()
    q8 = built["variants"][1]["digest"]
    kept = mdl("inspect", "solo:q8").json()["manifest"]
    solo = {q8, kept["config"]["digest"], *(lay["digest"] for lay in kept["layers"])}
    assert store_blobs(mdl_home) == solo
    assert (
        removed["bytes_freed"] > 0
        and mdl("list", "--json").json()["models"][0]["name"] == "solo:q8"
    )


def test_save_and_load_carry_the_index_and_its_variants(
    mdl: MdlRunner, mdl_home: Path, built: dict[str, Any], tmp_path: Path
) -> None:
    archive = tmp_path / "wide.tar"
    mdl("save", "wide:v", "-o", str(archive))
    other = {"MDL_HOME": str(tmp_path / "other")}
    assert mdl("load", "-i", str(archive), env=other).out.strip() == "loaded wide:v"
    assert store_blobs(tmp_path / "other") == store_blobs(mdl_home)
    listed = mdl("list", "--json", env=other).json()["models"]
    assert [(m["digest"], m["variants_present"]) for m in listed] == [(built["digest"], 3)]
    mdl("verify", env=other)


def test_skopeo_reads_a_store_holding_an_index(
    mdl_home: Path, built: dict[str, Any], tmp_path: Path
) -> None:
    store = mdl_home / "store"
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", f"oci:{store}:wide:v"], capture_output=True, check=True
    ).stdout
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == built["digest"]
    copy = tmp_path / "copy"
    subprocess.run(
        ["skopeo", "copy", "--quiet", "--all", f"oci:{store}:wide:v", f"oci:{copy}:wide"],
        check=True,
        capture_output=True,
    )
    assert (
        json.loads((copy / "index.json").read_text())["manifests"][0]["digest"] == built["digest"]
    )
    assert {p.name for p in (copy / "blobs" / "sha256").iterdir()} == {
        p.name for p in (store / "blobs" / "sha256").iterdir()
    }
