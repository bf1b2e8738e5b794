"""An index of three variants pushed to mdl's registry and to distribution 2.8, then pulled into
fresh stores: each pull fetches exactly the variant that fits its memory budget."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cli_runner import MdlRunner
from client_registries import Registry
from variant_models import build_index, store_blobs, variants_workdir


@pytest.fixture
def index(mdl: MdlRunner, tmp_path: Path) -> dict[str, Any]:
    """``wide:v``'s build JSON."""
    return build_index(mdl, variants_workdir(tmp_path))


def _closure(mdl: MdlRunner, digest: str) -> set[str]:
    """The manifest ``digest`` (a variant in the building store) and its config and layers."""
    doc = mdl("inspect", f"wide@{digest}").json()["manifest"]
    return {digest, doc["config"]["digest"], *(layer["digest"] for layer in doc["layers"])}


def _budgets(variants: list[dict[str, Any]]) -> dict[str, str]:
    """A budget just above each variant's memory need (and below the next's): quantization ->
    MDL_MEMORY_LIMIT."""
    return {v["quantization"]: str(v["memory"] + 1000) for v in variants}


@pytest.fixture(params=["mdl", "distribution"])
def registry(request: pytest.FixtureRequest) -> Registry:
    name = "mdl_registry" if request.param == "mdl" else "distribution"
    found: Registry = request.getfixturevalue(name)
    return found


def test_each_budget_pulls_exactly_the_variant_that_fits(
    mdl: MdlRunner, index: dict[str, Any], registry: Registry, tmp_path: Path
) -> None:
    variants = index["variants"]
    assert [v["quantization"] for v in variants] == ["F16", "Q8_0", "Q4_K_M"]
    assert variants[0]["memory"] > variants[1]["memory"] > variants[2]["memory"]
    ref = f"{registry.host}/demo/wide:v"
    pushed = mdl("push", "wide:v", ref, "--json").json()
    assert pushed["digest"] == index["digest"]
    for quantization, limit in _budgets(variants).items():
        home = tmp_path / f"home-{quantization}"
        env = {"MDL_HOME": str(home), "MDL_MEMORY_LIMIT": limit}
        pulled = mdl("pull", ref, "--json", env=env).json()
        assert pulled["digest"] == index["digest"]
        assert pulled["variants"] == [quantization]
        chosen = next(v for v in variants if v["quantization"] == quantization)
        assert store_blobs(home) == {index["digest"]} | _closure(mdl, chosen["digest"])
        assert pulled["bytes_transferred"] == sum(
            (home / "store" / "blobs" / "sha256" / d.removeprefix("sha256:")).stat().st_size
            for d in _closure(mdl, chosen["digest"]) - {chosen["digest"]}
        )
        assert mdl("show", ref, "--json", env=env).json()["digest"] == chosen["digest"]
        listed = mdl("list", "--json", env=env).json()["models"]
        assert [(m["name"], m["variants"], m["variants_present"]) for m in listed] == [(ref, 3, 1)]


def test_variant_and_all_variants_choose_by_hand(
    mdl: MdlRunner, index: dict[str, Any], mdl_registry: Registry, tmp_path: Path
) -> None:
    ref = f"{mdl_registry.host}/demo/wide:v"
    mdl("push", "wide:v", ref)
    small = str(index["variants"][-1]["memory"] + 1000)
    home = tmp_path / "by-hand"
    env = {"MDL_HOME": str(home), "MDL_MEMORY_LIMIT": small}
    assert mdl("pull", ref, "--variant", "Q8_0", "--json", env=env).json()["variants"] == ["Q8_0"]
    q8 = index["variants"][1]["digest"]
    assert store_blobs(home) == {index["digest"]} | _closure(mdl, q8)
    missing = mdl("pull", ref, "--variant", "q5_0", env=env, ok=False)
    assert missing.code == 2 and "no variant q5_0; it has F16, Q8_0, Q4_K_M" in missing.err
    every = tmp_path / "every"
    pulled = mdl("pull", ref, "--all-variants", "--json", env={"MDL_HOME": str(every)}).json()
    assert pulled["variants"] == ["F16", "Q8_0", "Q4_K_M"]
    whole = {index["digest"]}.union(*(_closure(mdl, v["digest"]) for v in index["variants"]))
    assert store_blobs(every) == whole


def test_no_variant_fits_is_a_clear_error_and_fetches_nothing(
    mdl: MdlRunner, index: dict[str, Any], distribution: Registry, tmp_path: Path
) -> None:
    ref = f"{distribution.host}/demo/wide:v"
    mdl("push", "wide:v", ref)
    home = tmp_path / "tight"
    env = {"MDL_HOME": str(home), "MDL_MEMORY_LIMIT": "1MiB"}
    failed = mdl("pull", ref, env=env, ok=False)
    smallest = index["variants"][-1]["memory"] / 10**6
    assert failed.code == 2 and "Traceback" not in failed.err
    assert (
        f"no variant fits in 1.0 MB (MDL_MEMORY_LIMIT); the smallest, Q4_K_M, needs "
        f"{smallest:.1f} MB" in failed.err
    )
    assert mdl("list", "--json", env=env).json()["models"] == []
    assert store_blobs(home) == set()
    bad = mdl("pull", ref, env={**env, "MDL_MEMORY_LIMIT": "2G"}, ok=False)
    assert bad.code == 2 and "MDL_MEMORY_LIMIT='2G': want bytes" in bad.err


def test_a_partly_pulled_index_is_served_whole_but_not_pushed(
    mdl: MdlRunner, index: dict[str, Any], mdl_registry: Registry, tmp_path: Path
) -> None:
    ref = f"{mdl_registry.host}/demo/wide:v"
    mdl("push", "wide:v", ref)
    env = {"MDL_HOME": str(tmp_path / "partial"), "MDL_MEMORY_LIMIT": "100MB"}
    assert mdl("pull", ref, "--json", env=env).json()["variants"] == ["F16"]
    assert mdl("pull", ref, "--variant", "q4_k_m", "--json", env=env).json()["variants"] == [
        "Q4_K_M"
    ]
    mdl("verify", env=env)  # an index is whole with any of its variants
    shown = mdl("show", ref, "--json", env=env).json()
    assert shown["digest"] == index["variants"][0]["digest"]
    marks = [(v["quantization"], v["present"], v["chosen"]) for v in shown["variants"]]
    assert marks == [("F16", True, True), ("Q8_0", False, False), ("Q4_K_M", True, False)]
    store = tmp_path / "partial" / "store"
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", f"oci:{store}:{ref}"], capture_output=True, check=True
    ).stdout
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == index["digest"]
    failed = mdl("push", ref, f"{mdl_registry.host}/demo/copy:v", env=env, ok=False)
    assert (
        "1 of the index's 3 variants are not in the store; pull it with --all-variants"
        in failed.err
    )


def test_the_trust_policy_judges_the_variant_a_pull_fetches(
    mdl: MdlRunner, index: dict[str, Any], mdl_registry: Registry, tmp_path: Path
) -> None:
    mdl("key", "generate", "--out", str(tmp_path / "alice"))
    q4 = index["variants"][-1]["digest"]
    mdl("sign", f"wide@{q4}", "--key", str(tmp_path / "alice.key"))
    ref = f"{mdl_registry.host}/team/wide:v"
    mdl("push", "wide:v", ref)
    policy = tmp_path / "policy.json"
    (tmp_path / "team.pub").write_bytes((tmp_path / "alice.pub").read_bytes())
    scope = {f"{mdl_registry.host}/team": [{"type": "signedBy", "keyPath": "team.pub"}]}
    policy.write_text(
        json.dumps({"default": [{"type": "reject"}], "transports": {"docker": scope}})
    )
    home = tmp_path / "guarded"
    env = {"MDL_HOME": str(home), "MDL_POLICY": str(policy), "MDL_MEMORY_LIMIT": "1GB"}
    refused = mdl("pull", ref, env=env, ok=False)  # F16 fits, and F16 is not signed
    assert refused.code == 1 and "requires signedBy" in refused.err
    assert not (home / "store" / "blobs" / "sha256").exists() or store_blobs(home) == set()
    pulled = mdl("pull", ref, "--variant", "q4_K_M", "--json", env=env).json()
    assert pulled["variants"] == ["Q4_K_M"] and pulled["referrers"] == 1
    every = mdl("pull", ref, "--all-variants", env=env, ok=False)
    assert every.code == 1 and "requires signedBy" in every.err
