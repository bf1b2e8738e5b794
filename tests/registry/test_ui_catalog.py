"""The registry browser at ``/ui`` in a real browser (Debian's chromium, headless, playwright's
sync API) against a real ``mdl registry serve`` holding models pushed by the real ``mdl`` CLI:
an mdl model with every part, one signed with ``mdl sign`` (its referrers pushed with it), one
in Ollama's format, and an index of three variants put through the registry API.

Every fact a page shows is checked against the manifest and config read from ``/v2/``. Each page
fails on any console or page error (where a CSP violation shows). Screenshots of every page go to
the module's tmp directory (their paths are printed).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from browsing import Opened, launch, screenshot_dir
from playwright.sync_api import Browser, Page, expect
from servers import RunningServer, start_mdl_registry

MANIFEST_TYPES = ",".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
QUANTS = ("Q4_K_M", "Q8_0", "F16")
MODELFILE = """FROM {models}/tiny.gguf
ADAPTER {models}/lora.gguf
TEMPLATE \"\"\"{{{{ .System }}}} <b>{{{{ .Prompt }}}}</b>\"\"\"
SYSTEM \"\"\"You are <script>alert(1)</script> terse.\"\"\"
PARAMETER temperature 0.25
PARAMETER stop "<|end|>"
MESSAGE user "Hello?"
MESSAGE assistant "Hi."
LICENSE \"\"\"MIT License <img src=x>

Permission is hereby granted.\"\"\"
"""


def run_mdl(home: Path, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "mdl.cli", *args],
        capture_output=True,
        env={**os.environ, "MDL_HOME": str(home)},
        timeout=120,
    )
    assert proc.returncode == 0, f"mdl {' '.join(args)}: {proc.stderr.decode()}"
    return proc.stdout.decode()


@dataclass
class Catalog:
    server: RunningServer
    shots: Path

    def get(self, path: str, **headers: str) -> httpx.Response:
        return httpx.get(self.server.url + path, headers=headers, timeout=30)

    def manifest(self, name: str, ref: str) -> tuple[dict[str, Any], str]:
        answer = self.get(f"/v2/{name}/manifests/{ref}", Accept=MANIFEST_TYPES)
        assert answer.status_code == 200, answer.text
        return answer.json(), answer.headers["Docker-Content-Digest"]

    def config(self, name: str, ref: str) -> dict[str, Any]:
        manifest, _ = self.manifest(name, ref)
        answer = httpx.get(
            f"{self.server.url}/v2/{name}/blobs/{manifest['config']['digest']}",
            follow_redirects=True,
        )
        config: dict[str, Any] = answer.json()
        return config


def push_index(url: str, name: str, tag: str, children: list[tuple[str, str]]) -> str:
    """PUT an OCI index of ``children`` (tag, quantization) to ``name:tag``; its digest."""
    entries = []
    for child, quant in children:
        head = httpx.head(f"{url}/v2/{name}/manifests/{child}", headers={"Accept": MANIFEST_TYPES})
        entries.append(
            {
                "mediaType": head.headers["Content-Type"],
                "digest": head.headers["Docker-Content-Digest"],
                "size": int(head.headers["Content-Length"]),
                "platform": {"architecture": "amd64", "os": "linux"},
                "annotations": {
                    "dev.mdl.variant.quantization": quant,
                    "dev.mdl.variant.memory": str(len(quant) * 1000),
                },
            }
        )
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    put = httpx.put(
        f"{url}/v2/{name}/manifests/{tag}",
        content=json.dumps(index).encode(),
        headers={"Content-Type": OCI_INDEX},
    )
    assert put.status_code == 201, put.text
    return put.headers["Docker-Content-Digest"]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Catalog]:
    root = tmp_path_factory.mktemp("ui-registry")
    work = tmp_path_factory.mktemp("ui-work")
    home = work / "home"
    with start_mdl_registry(root) as server:
        host = server.host
        (work / "Modelfile").write_text(MODELFILE.format(models=models_dir))
        run_mdl(home, "build", "-q", "-f", str(work / "Modelfile"), "-t", "full:1")
        run_mdl(home, "push", "full:1", f"{host}/team/full:1")
        run_mdl(home, "push", "full:1", f"{host}/team/llama-ollama:1", "--format", "ollama")

        (work / "Modelfile.signed").write_text(f'FROM {models_dir}/tiny-b.gguf\nLICENSE "MIT"\n')
        run_mdl(home, "build", "-q", "-f", str(work / "Modelfile.signed"), "-t", "signed:1")
        run_mdl(home, "key", "generate", "--out", str(work / "alice"))
        run_mdl(home, "sign", "signed:1", "--key", str(work / "alice.key"))
        run_mdl(home, "push", "signed:1", f"{host}/team/signed:1")

        children = []
        for number, quant in enumerate(QUANTS):
            modelfile = work / f"Modelfile.{quant}"
            modelfile.write_text(f"FROM {models_dir}/tiny.gguf\nPARAMETER seed {number}\n")
            run_mdl(home, "build", "-q", "-f", str(modelfile), "-t", f"v:{quant.lower()}")
            run_mdl(home, "push", f"v:{quant.lower()}", f"{host}/zoo/variants:{quant.lower()}")
            children.append((quant.lower(), quant))
        push_index(server.url, "zoo/variants", "latest", children)
        shots = screenshot_dir(tmp_path_factory.mktemp("ui-screenshots"))
        print(f"\nscreenshots: {shots}")
        yield Catalog(server, shots)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch() as browser:
        yield browser


def open_ui(browser: Browser, catalog: Catalog, hash_: str = "", **context: Any) -> Opened:
    opened = Opened(browser, f"{catalog.server.url}/ui{hash_}", **context)
    expect(opened.page.locator("body[data-ready=true]")).to_have_count(1)
    return opened


def catalog_names(page: Page) -> list[str]:
    return page.locator("#catalog tbody tr").evaluate_all("rows => rows.map(r => r.dataset.name)")


def fact(page: Page, key: str) -> str:
    return page.locator(f'#facts dd[data-fact="{key}"]').inner_text()


def test_the_catalog_lists_every_repository_with_its_facts(
    browser: Browser, catalog: Catalog
) -> None:
    opened = open_ui(browser, catalog)
    page = opened.page
    expect(page.locator("#count")).to_have_text("4 repositories")
    assert catalog_names(page) == ["team/full", "team/llama-ollama", "team/signed", "zoo/variants"]
    config = catalog.config("team/full", "1")["config"]
    row = page.locator('#catalog tr[data-name="team/full"] td')
    assert row.nth(1).inner_text() == "1"
    assert row.nth(3).inner_text() == config["architecture"]
    assert row.nth(4).inner_text() == config["paramSize"]
    assert row.nth(5).inner_text() == config["quantization"]
    manifest, _ = catalog.manifest("team/full", "1")
    size = manifest["config"]["size"] + sum(layer["size"] for layer in manifest["layers"])
    shown = opened.page.evaluate("() => fetch('/ui/api/catalog?q=team/full').then(r => r.json())")[
        "repositories"
    ][0]["summary"]["size"]
    assert shown == size
    variants = page.locator('#catalog tr[data-name="zoo/variants"] td')
    assert variants.nth(1).inner_text() == "latest"
    assert "(3 variants)" in variants.nth(5).inner_text()
    page.screenshot(path=catalog.shots / "catalog.png", full_page=True)
    page.emulate_media(color_scheme="dark")
    page.screenshot(path=catalog.shots / "catalog-dark.png", full_page=True)
    opened.close()


def test_search_filters_on_the_server_as_you_type(browser: Browser, catalog: Catalog) -> None:
    opened = open_ui(browser, catalog)
    page = opened.page
    expect(page.locator("#count")).to_have_text("4 repositories")
    page.locator("#q").press_sequentially("sig", delay=30)
    expect(page.locator("#count")).to_have_text("1 repository match “sig”")
    assert catalog_names(page) == ["team/signed"]
    searches = [u for u in opened.urls if "/ui/api/catalog" in u]
    assert any("q=sig" in u for u in searches)
    assert len(searches) <= 3, searches  # debounced: not one request per key
    page.locator("#q").fill("zoo q8_0")  # every word must match: name, quantization, ...
    expect(page.locator("#count")).to_have_text("1 repository match “zoo q8_0”")
    page.locator("#q").fill("nothing-like-this")
    expect(page.locator("#catalog-empty")).to_be_visible()
    page.screenshot(path=catalog.shots / "search.png", full_page=True)
    assert "q=nothing-like-this" in page.url  # the search is in the address, for Back
    opened.close()


def test_the_catalog_paginates(catalog: Catalog) -> None:
    answer = catalog.get("/ui/api/catalog?n=3")
    assert re.fullmatch(r"search;dur=\d+\.\d", answer.headers["Server-Timing"])
    first = answer.json()
    second = catalog.get("/ui/api/catalog?n=3&start=3").json()
    assert first["total"] == second["total"] == 4
    names = [r["name"] for r in first["repositories"] + second["repositories"]]
    assert names == ["team/full", "team/llama-ollama", "team/signed", "zoo/variants"]
    assert catalog.get("/ui/api/catalog?n=-1").status_code == 400
    assert catalog.get("/ui/api/catalog?start=x").json()["errors"][0]["code"] == "UNSUPPORTED"


def test_the_repository_page_lists_tags_and_the_variants_of_an_index(
    browser: Browser, catalog: Catalog
) -> None:
    opened = open_ui(browser, catalog, "#/repo?name=zoo/variants")
    page = opened.page
    expect(page.locator("#tags tbody tr")).to_have_count(4)
    first = page.locator("#tags tbody tr").first
    assert first.get_attribute("data-tag") == "latest"
    index, digest = catalog.manifest("zoo/variants", "latest")
    assert first.locator("td").nth(1).get_attribute("title") == digest
    assert "index (3 variants)" in first.inner_text()
    rows = page.locator("table.variants").first.locator("tbody tr")
    expect(rows).to_have_count(3)
    for number, entry in enumerate(index["manifests"]):
        row = rows.nth(number)
        assert row.get_attribute("data-digest") == entry["digest"]
        assert (
            row.locator('td[data-annotation="dev.mdl.variant.quantization"]').inner_text()
            == (QUANTS[number])
        )
        assert "linux/amd64" in row.inner_text()
    page.screenshot(path=catalog.shots / "repository.png", full_page=True)
    rows.nth(1).locator("a").click()
    expect(page.locator("#model-digest")).to_contain_text(index["manifests"][1]["digest"])
    expect(page.locator("#facts")).to_be_visible()
    opened.close()


def test_the_model_card_shows_what_the_artifact_holds(browser: Browser, catalog: Catalog) -> None:
    opened = open_ui(browser, catalog)
    page = opened.page
    page.locator('#catalog tr[data-name="team/full"] a', has_text="1").click()
    expect(page.locator("#facts")).to_be_visible()
    manifest, digest = catalog.manifest("team/full", "1")
    config = catalog.config("team/full", "1")
    assert digest in page.locator("#model-digest").inner_text()
    assert fact(page, "architecture") == config["config"]["architecture"]
    assert fact(page, "param_size") == config["config"]["paramSize"]
    assert fact(page, "quantization") == config["config"]["quantization"]
    assert fact(page, "context_length") == str(config["config"]["contextLength"])
    # artifact text is text: the markup in it shows as written and runs nothing
    system = page.locator('pre[data-text="system"]')
    assert system.inner_text() == "You are <script>alert(1)</script> terse."
    assert page.locator("#card script, #card img, #card b").count() == 0
    assert page.locator('pre[data-text="template"]').inner_text() == (
        "{{ .System }} <b>{{ .Prompt }}</b>"
    )
    assert page.get_by_role("heading", name="Template (go)").is_visible()
    assert page.locator('pre[data-text="license"]').inner_text().startswith("MIT License <img")
    parameters = page.locator('table[data-table="parameters"] tbody tr')
    assert parameters.evaluate_all("rows => rows.map(r => r.innerText)") == [
        'stop\t"<|end|>"',
        "temperature\t0.25",
    ]
    assert page.locator("ol.messages li").all_inner_texts() == ["user: Hello?", "assistant: Hi."]
    assert page.locator('table[data-table="adapters"] tbody tr').count() == 1
    layers = page.locator('table[data-table="layers"] tbody tr')
    expect(layers).to_have_count(len(manifest["layers"]))
    for number, layer in enumerate(manifest["layers"]):
        cells = layers.nth(number).locator("td").all_inner_texts()
        assert cells[0] == layer["mediaType"]
        assert cells[1] == layer["annotations"]["org.cncf.model.filepath"]
        assert cells[3] == layer["digest"]
    snippets = page.locator(".snippet code").all_inner_texts()
    reference = f"{catalog.server.host}/team/full:1"
    assert snippets == [f"mdl pull --insecure {reference}", f"FROM {reference}"]
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.locator('[data-snippet="mdl"] button').click()
    expect(page.locator('[data-snippet="mdl"] button')).to_have_text("Copied")
    assert page.evaluate("() => navigator.clipboard.readText()") == snippets[0]
    page.screenshot(path=catalog.shots / "model.png", full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.emulate_media(color_scheme="dark")
    page.screenshot(path=catalog.shots / "model-phone-dark.png", full_page=True)
    opened.close()


def test_an_ollama_model_offers_ollama_pull(browser: Browser, catalog: Catalog) -> None:
    opened = open_ui(browser, catalog, "#/model?name=team/llama-ollama&ref=1")
    page = opened.page
    expect(page.locator('[data-snippet="ollama"] code')).to_have_text(
        f"ollama pull --insecure {catalog.server.host}/team/llama-ollama:1"
    )
    config = catalog.config("team/llama-ollama", "1")
    assert fact(page, "format") == "ollama"
    assert fact(page, "quantization") == config["file_type"]
    assert fact(page, "architecture") == config["model_family"]
    opened.close()


def test_a_signed_model_lists_its_referrers(browser: Browser, catalog: Catalog) -> None:
    _, digest = catalog.manifest("team/signed", "1")
    referrers = catalog.get(f"/v2/team/signed/referrers/{digest}").json()["manifests"]
    assert referrers, "mdl push carried no signature"
    opened = open_ui(browser, catalog, "#/model?name=team/signed&ref=1")
    page = opened.page
    rows = page.locator('table[data-table="referrers"] tbody tr')
    expect(rows).to_have_count(len(referrers))
    cells = rows.first.locator("td").all_inner_texts()
    assert cells[:3] == ["signature", referrers[0]["artifactType"], referrers[0]["digest"]]
    page.screenshot(path=catalog.shots / "signed.png", full_page=True)
    opened.close()


def test_the_page_is_usable_with_the_keyboard(browser: Browser, catalog: Catalog) -> None:
    opened = open_ui(browser, catalog)
    page = opened.page
    expect(page.locator("#count")).to_have_text("4 repositories")
    page.keyboard.press("/")
    page.keyboard.type("signed")
    expect(page.locator("#count")).to_have_text("1 repository match “signed”")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")  # the repository link, then its latest tag
    assert page.evaluate("() => document.activeElement.textContent") == "1"
    page.keyboard.press("Enter")
    expect(page.locator("#model-name")).to_have_text("team/signed:1")
    opened.close()
