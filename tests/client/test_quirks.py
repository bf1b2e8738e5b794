"""Pulls from registries with real-world habits: redirects to storage, 429/503, Ollama's quirks."""

from __future__ import annotations

import time
from pathlib import Path

from cli_runner import MdlRunner
from client_registries import Registry
from ggufs import write_padded_llama
from standin import Quirks, standin


def test_blob_redirects_are_followed_without_leaking_credentials(
    mdl: MdlRunner, tiny_model: str, distribution: Registry, tmp_path: Path
) -> None:
    mdl("push", "tiny", f"{distribution.host}/quirks/redirect:1")
    quirks = Quirks(redirect_blobs=True)
    with standin(distribution.host, quirks) as host:
        env = {
            "MDL_HOME": str(tmp_path / "other"),
            "MDL_REGISTRY_USER": "alice",
            "MDL_REGISTRY_PASSWORD": "s3cret",
            "MDL_REGISTRY_HOST": host,
        }
        pulled = mdl("pull", f"{host}/quirks/redirect:1", "--json", env=env).json()
    assert pulled["digest"] == tiny_model
    assert len(quirks.storage_headers) >= 3
    assert all("authorization" not in headers for headers in quirks.storage_headers)
    assert all(headers.get("range", "").startswith("bytes=") for headers in quirks.storage_headers)


def test_a_large_blob_comes_in_parallel_ranges(
    mdl: MdlRunner, distribution: Registry, tmp_path: Path
) -> None:
    write_padded_llama(tmp_path / "big.gguf", 80)
    (tmp_path / "Modelfile").write_text("FROM ./big.gguf\n")
    built = mdl("build", "-q", "-t", "ranged", cwd=tmp_path).out.strip()
    mdl("push", "ranged", f"{distribution.host}/quirks/ranged:1")
    quirks = Quirks(redirect_blobs=True)
    with standin(distribution.host, quirks) as host:
        env = {"MDL_HOME": str(tmp_path / "other"), "MDL_PULL_CONNECTIONS": "2"}
        assert mdl("pull", f"{host}/quirks/ranged:1", "-q", env=env).out.strip() == built
    size = (tmp_path / "big.gguf").stat().st_size
    ranges = {span[0]: span[1:] for span in quirks.storage_spans}
    half = size // 2
    first, second = ranges[f"bytes=0-{half - 1}"], ranges[f"bytes={half}-{size - 1}"]
    assert second[0] < first[1] and first[0] < second[1], "the two ranges did not overlap"


def test_429_and_503_are_retried(
    mdl: MdlRunner, tiny_model: str, distribution: Registry, tmp_path: Path
) -> None:
    mdl("push", "tiny", f"{distribution.host}/quirks/retry:1")
    quirks = Quirks(failures=[429, 503, 503])
    with standin(distribution.host, quirks) as host:
        env = {"MDL_HOME": str(tmp_path / "other")}
        pulled = mdl("pull", f"{host}/quirks/retry:1", "-q", env=env).out.strip()
    assert pulled == tiny_model
    assert quirks.failed == [429, 503, 503] and not quirks.failures


def test_a_stalled_blob_download_is_retried_from_where_it_stopped(
    mdl: MdlRunner, tiny_model: str, distribution: Registry, tmp_path: Path
) -> None:
    mdl("push", "tiny", f"{distribution.host}/quirks/stall:1")
    quirks = Quirks(stall_blobs=1)
    with standin(distribution.host, quirks) as host:
        env = {"MDL_HOME": str(tmp_path / "other"), "MDL_STALL_TIMEOUT": "1"}
        started = time.monotonic()
        pulled = mdl("pull", f"{host}/quirks/stall:1", "--json", env=env).json()
        elapsed = time.monotonic() - started
    assert pulled["digest"] == tiny_model
    assert quirks.stall_blobs == 0  # the stall happened
    assert elapsed < 30, "the stall was not detected by the read timeout"
    assert mdl("verify", env=env).code == 0


def test_pull_from_a_registry_with_ollamas_quirks(
    mdl: MdlRunner, tiny_model: str, distribution: Registry, tmp_path: Path
) -> None:
    mdl("push", "tiny", f"{distribution.host}/library/quirky:1")
    with standin(distribution.host, Quirks(ollama=True)) as host:
        env = {"MDL_HOME": str(tmp_path / "other")}
        assert mdl("pull", f"{host}/library/quirky:1", "-q", env=env).out.strip() == tiny_model
