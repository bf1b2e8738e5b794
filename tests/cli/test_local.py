"""The local verbs through the real CLI, and the store read by skopeo, an independent OCI client."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_runner import MdlRunner
from ggufs import write_tiny_llama

from mdl.spec import manifest as manifests
from mdl.spec import mediatypes as mt
from mdl.spec.manifest import Index
from mdl.spec.reference import Reference
from mdl.store.store import Store


@pytest.fixture
def built(mdl: MdlRunner, tmp_path: Path, models_dir: Path) -> str:
    shutil.copy(models_dir / "tiny.gguf", tmp_path / "tiny.gguf")
    shutil.copy(models_dir / "lora.gguf", tmp_path / "lora.gguf")
    (tmp_path / "Modelfile").write_text(
        'FROM ./tiny.gguf\nADAPTER ./lora.gguf\nSYSTEM "Be brief."\nPARAMETER num_ctx 128\n'
        "LICENSE MIT\n"
    )
    return mdl(
        "build", "-q", "-t", "tiny", "-t", "localhost:5000/demo/tiny:1.0", cwd=tmp_path
    ).out.strip()


def test_list_shows_every_tag_with_size(mdl: MdlRunner, built: str) -> None:
    models = mdl("list", "--json").json()["models"]
    assert [m["name"] for m in models] == ["localhost:5000/demo/tiny:1.0", "tiny:latest"]
    assert {m["digest"] for m in models} == {built}
    assert models[0]["size"] > 489_280
    text = mdl("ls").out
    assert "tiny:latest" in text and built[7:19] in text


def test_show_reports_metadata_and_parts(mdl: MdlRunner, built: str) -> None:
    shown = mdl("show", "tiny", "--json").json()
    assert shown["digest"] == built
    assert (shown["architecture"], shown["quantization"], shown["context_length"]) == (
        "llama",
        "F32",
        512,
    )
    assert shown["parameters"] == {"num_ctx": 128}
    assert shown["system"] == "Be brief."
    assert shown["licenses"] == ["MIT"]
    assert mdl("show", "tiny", "--system").out == "Be brief.\n"
    assert mdl("show", "tiny", "--license").out == "MIT\n"
    text = mdl("show", "tiny").out
    assert "architecture        llama" in text and "num_ctx" in text


def test_tag_then_rm_keeps_blobs_until_the_last_name_goes(
    mdl: MdlRunner, mdl_home: Path, built: str
) -> None:
    mdl("tag", "tiny", "copy:v2")
    assert mdl("inspect", "copy:v2").json()["digest"] == built
    weights = mdl_home / "store" / "blobs" / "sha256"
    count = len(list(weights.iterdir()))
    removed = mdl("rm", "tiny", "copy:v2", "--json").json()
    assert [r["name"] for r in removed["removed"]] == ["tiny:latest", "copy:v2"]
    assert removed["blobs_freed"] == 0
    assert len(list(weights.iterdir())) == count
    last = mdl("rm", "localhost:5000/demo/tiny:1.0", "--json").json()
    assert last["blobs_freed"] == count
    assert list(weights.iterdir()) == []
    assert mdl("list", "--json").json() == {"models": []}


def test_prune_frees_what_no_tag_reaches(mdl: MdlRunner, mdl_home: Path, built: str) -> None:
    (mdl_home / "store" / "ingest" / "stale.tmp").write_bytes(b"x")
    assert mdl("prune", "--json").json()["blobs"] == []
    mdl("rm", "tiny", "localhost:5000/demo/tiny:1.0")
    (mdl_home / "store" / "ingest" / "stale.tmp").write_bytes(b"x")
    orphan = mdl_home / "store" / "blobs" / "sha256" / ("0" * 64)
    orphan.write_bytes(b"junk")
    dry = mdl("prune", "--dry-run", "--json").json()
    assert dry["blobs"] == ["sha256:" + "0" * 64] and dry["temporary_files"] == 1
    assert orphan.exists()
    report = mdl("prune", "--json").json()
    assert report["bytes_freed"] == 4 and not orphan.exists()


def test_export_unpacks_files_llama_cpp_users_recognise(
    mdl: MdlRunner, built: str, tmp_path: Path, models_dir: Path
) -> None:
    out = tmp_path / "exported"
    files = mdl("export", "tiny", str(out), "--json").json()["files"]
    names = sorted(str(Path(f).relative_to(out)) for f in files)
    assert names[0] == "LICENSE" and "model.gguf" in names and "params.json" in names
    assert any(n.startswith("adapters/") and n.endswith(".gguf") for n in names)
    assert (out / "model.gguf").read_bytes() == (models_dir / "tiny.gguf").read_bytes()
    assert json.loads((out / "params.json").read_text()) == {"num_ctx": 128}


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("show", "nosuch"), 4, "model nosuch:latest not found"),
        (("show", "Bad:Ref"), 2, "invalid reference 'Bad:Ref'"),
        (("rm", "nosuch"), 4, "not found"),
        (("tag", "nosuch", "x"), 4, "not found"),
        (("build", "-f", "missing"), 2, "missing:0: cannot read"),
        (("build", "-t", "a:b:c"), 2, "invalid reference"),
    ],
)
def test_errors_are_one_line_with_an_exit_code(
    mdl: MdlRunner, args: tuple[str, ...], code: int, message: str, tmp_path: Path
) -> None:
    failed = mdl(*args, cwd=tmp_path, ok=False)
    assert failed.code == code
    assert failed.err.startswith("Error: ") and message in failed.err
    assert len(failed.err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("pull", "--bogus", "x"), "No such option: --bogus"),
        (("pull",), "Missing argument"),
        (("nosuchcommand",), "No such command"),
    ],
)
def test_usage_errors_print_usage_and_exit_2(
    mdl: MdlRunner, args: tuple[str, ...], message: str
) -> None:
    failed = mdl(*args, ok=False)
    assert failed.code == 2
    assert message in failed.err and "Usage: mdl" in failed.err
    assert "Traceback" not in failed.err


def test_skopeo_reads_the_store_as_an_oci_layout(
    mdl: MdlRunner, mdl_home: Path, built: str, tmp_path: Path
) -> None:
    store = mdl_home / "store"
    for ref in ("tiny:latest", "localhost:5000/demo/tiny:1.0"):
        raw = subprocess.run(
            ["skopeo", "inspect", "--raw", f"oci:{store}:{ref}"],
            capture_output=True,
            check=True,
        ).stdout
        assert "sha256:" + hashlib.sha256(raw).hexdigest() == built
    copy = tmp_path / "copy"
    subprocess.run(
        ["skopeo", "copy", "--quiet", f"oci:{store}:tiny:latest", f"oci:{copy}:tiny"],
        check=True,
        capture_output=True,
    )
    index = json.loads((copy / "index.json").read_text())
    assert index["manifests"][0]["digest"] == built
    assert sorted(p.name for p in (copy / "blobs" / "sha256").iterdir()) == sorted(
        p.name for p in (store / "blobs" / "sha256").iterdir()
    )


def test_killed_build_leaves_no_partial_blob_and_no_tag(
    mdl: MdlRunner, mdl_home: Path, tmp_path: Path
) -> None:
    big = tmp_path / "big.gguf"
    write_tiny_llama(big)
    with open(big, "ab") as padding:  # trailing bytes after the tensors are allowed in GGUF
        for _ in range(64):
            padding.write(b"\x01" * (8 * 1024 * 1024))
    (tmp_path / "Modelfile").write_text("FROM ./big.gguf\n")
    ingest = mdl_home / "store" / "ingest"
    build = subprocess.Popen([sys.executable, "-m", "mdl.cli", "build", "-t", "big"], cwd=tmp_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if ingest.exists() and any(p.stat().st_size > 0 for p in ingest.iterdir()):
            break
        time.sleep(0.005)
    build.send_signal(signal.SIGKILL)
    build.wait()
    assert list((mdl_home / "store" / "blobs" / "sha256").iterdir()) == []
    assert json.loads((mdl_home / "store" / "index.json").read_text())["manifests"] == []
    digest = mdl("build", "-q", "-t", "big", cwd=tmp_path).out.strip()
    assert mdl("inspect", "big").json()["digest"] == digest
    assert mdl("prune", "--json").json()["temporary_files"] == 1


def test_build_on_a_full_disk_is_a_clear_error_and_changes_nothing(
    mdl: MdlRunner, tmp_path: Path, models_dir: Path
) -> None:
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(small)], check=True)
    try:
        home = {"MDL_HOME": str(small / "home")}
        shutil.copy(models_dir / "tiny.gguf", tmp_path / "tiny.gguf")  # 478 KiB: cannot fit
        (tmp_path / "Modelfile").write_text('FROM ./tiny.gguf\nSYSTEM "hi"\n')
        failed = mdl("build", "-t", "tiny", cwd=tmp_path, env=home, ok=False)
        assert failed.code == 1
        assert "no space left on device" in failed.err
        store = small / "home" / "store"
        assert list((store / "blobs" / "sha256").iterdir()) == []
        assert list((store / "ingest").iterdir()) == []
        assert json.loads((store / "index.json").read_text())["manifests"] == []
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_a_tag_may_name_an_index_of_models(mdl: MdlRunner, mdl_home: Path, built: str) -> None:
    store = Store(mdl_home / "store")
    model = store.resolve(Reference.parse("tiny"))
    index = store.put_bytes(mt.OCI_INDEX, manifests.encode(Index((model,))))
    store.tag(index, Reference.parse("multi:q"))
    mdl("rm", "tiny", "localhost:5000/demo/tiny:1.0")
    assert mdl("show", "multi:q", "--json").json()["digest"] == built
    assert mdl("inspect", "multi:q").json()["manifest"]["manifests"][0]["digest"] == built
    listed = mdl("list", "--json").json()["models"]
    assert listed[0]["media_type"] == mt.OCI_INDEX and listed[0]["size"] > 489_280
    assert mdl("rm", "multi:q", "--json").json()["blobs_freed"] > 5
    assert list((mdl_home / "store" / "blobs" / "sha256").iterdir()) == []


def test_show_writes_a_modelfile_for_a_model_built_elsewhere(
    mdl: MdlRunner, mdl_home: Path, built: str, tmp_path: Path
) -> None:
    store = Store(mdl_home / "store")
    original = store.read_manifest(store.resolve(Reference.parse("tiny")))
    assert isinstance(original, manifests.Manifest)
    layers = tuple(
        layer
        for layer in original.layers
        if layer.annotations[mt.ANNOTATION_FILEPATH] != mt.MODELFILE_FILE
    )
    foreign = manifests.Manifest(original.config, layers, artifact_type=mt.MODEL_ARTIFACT)
    store.tag(store.put_bytes(mt.OCI_MANIFEST, manifests.encode(foreign)), Reference.parse("f"))
    printed = mdl("show", "f", "--modelfile").out
    assert printed.startswith("FROM sha256:") and "ADAPTER sha256:" in printed
    (tmp_path / "Rebuilt").write_text(printed)
    mdl("build", "-f", "Rebuilt", "-t", "rebuilt", cwd=tmp_path)
    rebuilt, source = mdl("show", "rebuilt", "--json").json(), mdl("show", "tiny", "--json").json()
    for key in ("files", "parameters", "system", "licenses", "template"):
        assert rebuilt[key] == source[key], key


def test_verify_finds_a_corrupted_blob_and_exits_1(
    mdl: MdlRunner, mdl_home: Path, built: str
) -> None:
    assert mdl("verify").code == 0
    files = [p for p in (mdl_home / "store" / "blobs").rglob("*") if p.is_file()]
    blobs = sorted(files, key=lambda p: p.stat().st_size)
    victim = blobs[-1]
    victim.chmod(0o644)
    with victim.open("r+b") as f:
        f.seek(100)
        f.write(b"\xff\xfe")
    run = mdl("verify", "--json", ok=False)
    assert run.code == 1
    assert any(victim.name in problem for problem in run.json()["problems"])
