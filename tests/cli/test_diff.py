"""``mdl diff A B`` on real pairs: quantized or not, another template and parameters, an added
adapter, and a model against itself; exit 0 when identical, 1 when different, 2 on error."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from cli_runner import MdlRunner
from ggufs import write_wide_llama


def _build(mdl: MdlRunner, work: Path, tag: str, modelfile: str, *flags: str) -> None:
    (work / "Modelfile").write_text(modelfile)
    mdl("build", "-q", "-t", tag, *flags, cwd=work)


def _diff(mdl: MdlRunner, a: str, b: str) -> tuple[int, dict[str, Any]]:
    run = mdl("diff", a, b, "--json", ok=False)
    return run.code, run.json()


def test_quantized_against_not(mdl: MdlRunner, tmp_path: Path) -> None:
    write_wide_llama(tmp_path / "wide.gguf")
    _build(mdl, tmp_path, "wide:f32", "FROM ./wide.gguf\n")
    _build(mdl, tmp_path, "wide:q8", "FROM ./wide.gguf\n", "--quantize", "q8_0")
    code, report = _diff(mdl, "wide:f32", "wide:q8")
    assert code == 1 and not report["identical"]
    changed = {c["filepath"]: c for c in report["layers"]["changed"]}
    assert set(changed) == {"model.gguf", "Modelfile"}
    assert changed["model.gguf"]["kind"] == "model"
    assert changed["model.gguf"]["b"]["size"] < changed["model.gguf"]["a"]["size"] / 3
    assert report["layers"]["added"] == report["layers"]["removed"] == []
    assert report["config"]["quantization"] == {"a": "F32", "b": "Q8_0"}
    assert report["config"]["precision"] == {"a": "fp32", "b": None}
    assert report["parameters"] == {} and "template" not in report
    text = mdl("diff", "wide:f32", "wide:q8", ok=False)
    assert text.code == 1
    assert "~ model     model.gguf  sha256:" in text.out
    assert "config quantization: 'F32' -> 'Q8_0'" in text.out


def test_a_changed_template_parameters_and_an_added_adapter(
    mdl: MdlRunner, tmp_path: Path, models_dir: Path
) -> None:
    shutil.copy(models_dir / "tiny.gguf", tmp_path / "tiny.gguf")
    shutil.copy(models_dir / "lora.gguf", tmp_path / "lora.gguf")
    base = "FROM ./tiny.gguf\nPARAMETER top_k 7\n"
    _build(mdl, tmp_path, "a", base + 'TEMPLATE """<s>{{ .Prompt }}\nend"""\nLICENSE MIT\n')
    _build(
        mdl,
        tmp_path,
        "b",
        base + 'ADAPTER ./lora.gguf\nTEMPLATE """<s>{{ .Prompt }}\nEND"""\nPARAMETER seed 3\n',
    )
    code, report = _diff(mdl, "a", "b")
    assert code == 1
    assert [(la["kind"], la["filepath"][:9]) for la in report["layers"]["added"]] == [
        ("adapter", "adapters/")
    ]
    assert [(la["kind"], la["filepath"]) for la in report["layers"]["removed"]] == [
        ("license", "LICENSE")
    ]
    assert {c["kind"] for c in report["layers"]["changed"]} == {"template", "params", "modelfile"}
    assert report["parameters"] == {"seed": {"a": None, "b": 3}}
    assert report["template"] == {"a": "<s>{{ .Prompt }}\nend", "b": "<s>{{ .Prompt }}\nEND"}
    text = mdl("diff", "a", "b", ok=False).out
    assert "parameter seed: (none) -> 3" in text
    assert "template:\n" in text and "  -end\n  +END\n" in text
    assert text.startswith("--- a (sha256:") and "\n+++ b (sha256:" in text


def test_identical_models_and_errors(mdl: MdlRunner, tmp_path: Path, models_dir: Path) -> None:
    shutil.copy(models_dir / "tiny.gguf", tmp_path / "tiny.gguf")
    _build(mdl, tmp_path, "one", "FROM ./tiny.gguf\n")
    mdl("tag", "one", "two:1.0")
    same = mdl("diff", "one", "two:1.0")
    assert same.code == 0 and same.out.startswith("one (sha256:")
    assert same.out.rstrip().endswith("are identical")
    assert mdl("diff", "one", "two:1.0", "--json").json()["identical"] is True
    missing = mdl("diff", "one", "nothere", ok=False)
    assert missing.code == 2 and "model nothere:latest not found" in missing.err
    assert mdl("diff", "one", "Bad Name", ok=False).code == 2
