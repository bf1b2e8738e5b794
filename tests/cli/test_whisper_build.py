"""A whisper.cpp model is packaged like any model: build, show, list, push, pull, save, load."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_runner import MdlRunner
from servers import RunningServer, start_mdl_registry
from whisper_models import write_tiny_whisper

from mdl.spec import mediatypes as mt


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with start_mdl_registry(tmp_path_factory.mktemp("mdl-registry")) as server:
        yield server


@pytest.fixture
def built(mdl: MdlRunner, tmp_path: Path) -> dict[str, object]:
    write_tiny_whisper(tmp_path / "ggml-tiny.en.bin")
    (tmp_path / "Modelfile").write_text("FROM ./ggml-tiny.en.bin\n")
    result: dict[str, object] = mdl("build", "-t", "whisper-tiny", "--json", cwd=tmp_path).json()
    return result


def test_build_stores_a_ggml_weight_layer_and_says_what_it_is(built: dict[str, object]) -> None:
    config = built["config"]
    assert isinstance(config, dict)
    assert config["config"]["format"] == "ggml"
    assert config["config"]["architecture"] == "whisper"
    assert config["config"]["capabilities"] == {"input_types": ["audio"], "output_types": ["text"]}
    layers = built["layers"]
    assert isinstance(layers, list)
    weights = layers[0]
    assert weights["filepath"] == mt.WHISPER_WEIGHTS_FILE
    assert weights["media_type"] == mt.MODEL_WEIGHT


def test_show_and_list(mdl: MdlRunner, built: dict[str, object]) -> None:
    shown = mdl("show", "whisper-tiny", "--json").json()
    assert shown["architecture"] == "whisper" and shown["format"] == "ggml"
    assert shown["input_types"] == ["audio"] and shown["quantization"] == "F16"
    assert mt.WHISPER_WEIGHTS_FILE in shown["files"]
    assert "format              ggml" in mdl("show", "whisper-tiny").out
    assert "whisper-tiny:latest" in mdl("list").out
    assert mdl("show", "whisper-tiny", "--modelfile").out.startswith("FROM sha256:")


def test_push_pull_save_load_round_trip(
    mdl: MdlRunner, built: dict[str, object], registry: RunningServer, tmp_path: Path
) -> None:
    ref = f"{registry.host}/speech/whisper-tiny:1"
    mdl("push", "whisper-tiny", ref)
    other = {"MDL_HOME": str(tmp_path / "other")}
    mdl("pull", ref, env=other)
    pulled = mdl("show", ref, "--json", env=other).json()
    assert pulled["digest"] == built["digest"] and pulled["format"] == "ggml"
    archive = tmp_path / "speech.tar"
    mdl("save", ref, "-o", str(archive), env=other)
    third = {"MDL_HOME": str(tmp_path / "third")}
    mdl("load", "-i", str(archive), env=third)
    assert mdl("show", ref, "--json", env=third).json()["digest"] == built["digest"]


def test_a_model_from_the_stored_one_keeps_its_weights(
    mdl: MdlRunner, built: dict[str, object], tmp_path: Path
) -> None:
    (tmp_path / "Modelfile.derived").write_text("FROM whisper-tiny\nLICENSE MIT\n")
    derived = mdl("build", "-t", "whisper-mit", "-f", "Modelfile.derived", "--json", cwd=tmp_path)
    layers = derived.json()["layers"]
    assert layers[0]["filepath"] == mt.WHISPER_WEIGHTS_FILE
    assert derived.json()["config"]["config"]["format"] == "ggml"


def test_quantize_is_refused_by_name(mdl: MdlRunner, tmp_path: Path) -> None:
    write_tiny_whisper(tmp_path / "ggml-tiny.en.bin")
    (tmp_path / "Modelfile").write_text("FROM ./ggml-tiny.en.bin\n")
    refused = mdl("build", "-t", "w:q", "--quantize", "q8_0", cwd=tmp_path, ok=False)
    assert refused.code != 0 and "not whisper.cpp's ggml files" in refused.err
