"""``mdl serve`` answers a request for an index by the variant that fits, names it in /api/ps and
/api/show, and picks again when the budget changes; only variants in the store are candidates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cli_runner import MdlRunner
from client_registries import Registry
from runtime.serving import Served
from variant_models import build_index, variants_workdir

from mdl.runtime.errors import OutOfMemory
from mdl.runtime.models import ModelResolver
from mdl.spec.variants import Budget
from mdl.store.store import Store


@pytest.fixture
def built(mdl: MdlRunner, tmp_path: Path) -> dict[str, Any]:
    return build_index(mdl, variants_workdir(tmp_path))


def test_the_resolver_picks_again_when_the_budget_changes(
    mdl_home: Path, built: dict[str, Any]
) -> None:
    budget: list[Budget | None] = [None]
    resolver = ModelResolver(Store.open(mdl_home), lambda: budget[0])
    assert resolver.resolve("wide:v").variant == "F16"
    for variant in built["variants"]:
        budget[0] = Budget(variant["memory"], "test")
        model = resolver.resolve("wide:v")
        assert (model.name, model.variant) == ("wide:v", variant["quantization"])
        assert str(model.digest) == variant["digest"]
    budget[0] = Budget(built["variants"][-1]["memory"] - 1, "test")
    with pytest.raises(OutOfMemory, match=r"no variant fits .* the smallest, Q4_K_M, needs"):
        resolver.resolve("wide:v")
    assert resolver.resolve(f"wide@{built['variants'][1]['digest']}").variant is None


def _generate(served: Served, model: str) -> dict[str, Any]:
    body = {"model": model, "prompt": "hi", "stream": False, "options": {"num_predict": 2}}
    status, answer = served.request("POST", "/api/generate", body)
    assert status == 200, answer
    reply: dict[str, Any] = answer
    return reply


def test_serve_answers_by_the_variant_that_fits_and_names_it(
    mdl_home: Path, built: dict[str, Any]
) -> None:
    q8 = built["variants"][1]
    served = Served(mdl_home, {"MDL_MEMORY_LIMIT": str(q8["memory"] + 1000)}).start()
    try:
        assert _generate(served, "wide:v")["model"] == "wide:v"
        status, ps = served.request("GET", "/api/ps")
        assert status == 200
        [entry] = ps["models"]
        assert (entry["name"], entry["variant"], entry["digest"]) == (
            "wide:v", "Q8_0", q8["digest"].removeprefix("sha256:"),
        )  # fmt: skip
        assert entry["size"] == q8["memory"]  # the runtime's estimate is the annotation's
        status, shown = served.request("POST", "/api/show", {"model": "wide:v"})
        assert status == 200
        assert (shown["variant"], shown["details"]["quantization_level"]) == ("Q8_0", "Q8_0")
    finally:
        served.stop()


def test_serve_chooses_only_among_the_variants_in_its_store(
    mdl: MdlRunner, built: dict[str, Any], mdl_registry: Registry, tmp_path: Path
) -> None:
    ref = f"{mdl_registry.host}/demo/wide:v"
    mdl("push", "wide:v", ref)
    home = tmp_path / "serving"
    mdl("pull", ref, "--variant", "q4_K_M", env={"MDL_HOME": str(home)})
    served = Served(home, {"MDL_MEMORY_LIMIT": "1GB"}).start()
    try:
        _generate(served, ref)
        assert [
            (m["name"], m["variant"]) for m in served.request("GET", "/api/ps")[1]["models"]
        ] == [(ref, "Q4_K_M")]
        mdl("pull", ref, "--variant", "q8_0", env={"MDL_HOME": str(home)})
        status, shown = served.request("POST", "/api/show", {"model": ref})
        assert (status, shown["variant"]) == (200, "Q8_0")
    finally:
        served.stop()


def test_tags_list_an_index_even_when_no_variant_fits(
    mdl_home: Path, built: dict[str, Any]
) -> None:
    served = Served(mdl_home, {"MDL_MEMORY_LIMIT": "1000"}).start()
    try:
        status, tags = served.request("GET", "/api/tags")
        assert status == 200
        [entry] = [m for m in tags["models"] if m["name"] == "wide:v"]
        assert entry["details"]["quantization_level"] == "F16"  # the best variant present
        status, answer = served.request(
            "POST", "/api/generate", {"model": "wide:v", "prompt": "hi", "stream": False}
        )
        assert status == 507 and "no variant fits" in answer["error"]
    finally:
        served.stop()
