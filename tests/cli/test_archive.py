"""``mdl save`` / ``mdl load``: offline archives that skopeo reads too."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from cli_runner import MdlRunner


@pytest.fixture
def built(mdl: MdlRunner, tmp_path: Path, models_dir: Path) -> str:
    shutil.copy(models_dir / "tiny.gguf", tmp_path / "tiny.gguf")
    (tmp_path / "Modelfile").write_text('FROM ./tiny.gguf\nSYSTEM "offline"\n')
    return mdl(
        "build", "-q", "-t", "tiny", "-t", "registry.local/team/tiny:1", cwd=tmp_path
    ).out.strip()


@pytest.mark.parametrize("name", ["models.tar", "models.tar.zst"])
def test_save_then_load_into_another_home(
    mdl: MdlRunner, built: str, tmp_path: Path, name: str
) -> None:
    archive = tmp_path / name
    mdl("save", "tiny", "registry.local/team/tiny:1", "-o", str(archive))
    other = {"MDL_HOME": str(tmp_path / "other")}
    loaded = mdl("load", "-i", str(archive), env=other).out
    assert "loaded tiny:latest" in loaded and "loaded registry.local/team/tiny:1" in loaded
    shown = mdl("show", "registry.local/team/tiny:1", "--json", env=other).json()
    assert shown["digest"] == built and shown["system"] == "offline"
    again = tmp_path / f"again-{name}"
    mdl("save", "tiny", "registry.local/team/tiny:1", "-o", str(again))
    assert again.read_bytes() == archive.read_bytes()


def test_skopeo_reads_the_uncompressed_archive(mdl: MdlRunner, built: str, tmp_path: Path) -> None:
    archive = tmp_path / "models.tar"
    mdl("save", "tiny", "-o", str(archive))
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", f"oci-archive:{archive}:tiny:latest"],
        check=True,
        capture_output=True,
    ).stdout
    assert json.loads(raw)["artifactType"] == "application/vnd.cncf.model.manifest.v1+json"


def test_load_refuses_a_tampered_blob_and_stores_nothing(
    mdl: MdlRunner, built: str, tmp_path: Path
) -> None:
    archive, tampered = tmp_path / "models.tar", tmp_path / "tampered.tar"
    mdl("save", "tiny", "-o", str(archive))
    with tarfile.open(archive) as source, tarfile.open(tampered, "w") as out:
        for member in source.getmembers():
            data = source.extractfile(member).read()  # type: ignore[union-attr]
            if member.size > 100_000:
                data = data[:-1] + b"\x00"
            out.addfile(member, io.BytesIO(data))
    other = tmp_path / "other"
    failed = mdl("load", "-i", str(tampered), env={"MDL_HOME": str(other)}, ok=False)
    assert failed.code == 1 and "content is sha256:" in failed.err
    assert json.loads((other / "store" / "index.json").read_text())["manifests"] == []
    assert not list((other / "store" / "ingest").iterdir())
