"""The registry browser with 2,000 repositories: page load in headless chromium, search latency.

Goals (issue 15): the catalog page is usable (first contentful paint, and the first page of
results on screen) in ≤ 1 s in headless Chromium on this machine; a search answers in ≤ 100 ms
server-side. The repositories (each an mdl model manifest with its own config, architecture and
quantization) are written straight through the storage driver, then ``mdl registry serve``
serves them. The page is loaded in a fresh browser context every round (no HTTP cache, no
storage); the first load after the server starts also builds the catalog index and is reported
on its own. Searches are timed by the server (``Server-Timing``) and from a keep-alive HTTP
client on loopback (an upper bound of the server's time). The baseline, in the same run, is
the registry's own ``GET /v2/_catalog?n=N`` (which walks storage and knows nothing of models).
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from pathlib import Path

import httpx
from common import Check, FamilyResult, Options, Timing, ratio_check

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from servers import RunningServer, start_mdl_registry

from mdl.registry import paths
from mdl.registry.repos import Repositories, Revision
from mdl.registry.storage.filesystem import FilesystemDriver
from mdl.spec import mediatypes as mt
from mdl.spec.descriptor import Descriptor
from mdl.spec.digest import Digest
from mdl.spec.manifest import Manifest, encode
from mdl.spec.modelpack import ModelConfig

NAME = "ui"
REPOSITORIES = 2000
PAGE_GOAL_S = 1.0
SEARCH_GOAL_S = 0.100
SEARCHES = 300
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
ARCHITECTURES = ("llama", "qwen2", "gemma3", "phi3", "mistral")
QUANTIZATIONS = ("Q4_K_M", "Q5_K_M", "Q8_0", "F16", "Q4_0", "Q6_K")
WORDS = ("chat", "code", "math", "vision", "embed", "instruct", "base", "tiny", "small", "large")
LOAD = """() => {
  const paint = performance.getEntriesByName("first-contentful-paint")[0];
  const results = performance.getEntriesByName("mdl:first-results")[0];
  return [paint ? paint.startTime : null, results ? results.startTime : null];
}"""


class UnsyncedDriver(FilesystemDriver):
    """The filesystem driver without its fsyncs: the layout the server reads, written fast
    (2,000 repositories are about 10,000 small objects; fsynced, minutes on this VM)."""

    def write(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def write_repositories(root: Path, count: int) -> list[str]:
    """``count`` model repositories in ``team-N/WORD-N`` form, written through the driver."""
    repos = Repositories(UnsyncedDriver(root))
    rng = random.Random(0)
    weights = b"GGUF" + bytes(60)
    weights_digest = Digest.of(weights)
    repos.driver.write(paths.blob(weights_digest), weights)
    names = []
    for number in range(count):
        name = f"team-{number % 40}/{rng.choice(WORDS)}-{number}"
        config = ModelConfig(
            architecture=rng.choice(ARCHITECTURES),
            param_size=f"{rng.choice((0.5, 1, 3, 7, 8, 14))}B".replace(".0B", "B"),
            quantization=rng.choice(QUANTIZATIONS),
            context_length=rng.choice((2048, 4096, 8192, 32768)),
            name=name,
        )
        config_bytes = json.dumps(config.to_json()).encode()
        config_desc = Descriptor.for_bytes(mt.MODEL_CONFIG, config_bytes)
        layer = Descriptor(mt.MODEL_WEIGHT, weights_digest, len(weights),
                           {mt.ANNOTATION_FILEPATH: mt.WEIGHTS_FILE})  # fmt: skip
        manifest = Manifest(config_desc, (layer,), artifact_type=mt.MODEL_ARTIFACT)
        data = encode(manifest)
        digest = Digest.of(data)
        blob = config_desc.digest
        repos.driver.write(paths.blob(blob), config_bytes)
        repos.link_blob(name, blob)
        repos.link_blob(name, weights_digest)
        repos.put_manifest(name, Revision(digest, mt.OCI_MANIFEST, len(data)), data, None)
        repos.tag(name, "latest", digest)
        names.append(name)
    return names


def page_loads(server: RunningServer, rounds: int) -> tuple[list[float], list[float]]:
    """FCP and first-results times (seconds from navigation start), one fresh context each."""
    from playwright.sync_api import sync_playwright

    paints, results = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for _ in range(rounds):
                context = browser.new_context()
                page = context.new_page()
                page.goto(f"{server.url}/ui")
                page.wait_for_function(
                    "() => performance.getEntriesByName('mdl:first-results').length"
                    " && performance.getEntriesByName('first-contentful-paint').length",
                    timeout=60_000,
                )
                rows = page.locator("#catalog tbody tr").count()
                if rows != 50:
                    raise RuntimeError(f"the first page shows {rows} repositories, not 50")
                paint, first = page.evaluate(LOAD)
                paints.append(paint / 1000)
                results.append(first / 1000)
                context.close()
        finally:
            browser.close()
    return paints, results


def searches(
    server: RunningServer, names: list[str]
) -> tuple[list[float], list[float], list[float]]:
    """Search latencies over HTTP, the server's own (its ``Server-Timing``), and the baseline's
    (``/v2/_catalog`` listing every repository)."""
    rng = random.Random(1)
    queries = []
    for _ in range(SEARCHES):
        name = rng.choice(names)
        queries.append(rng.choice((
            name.split("/")[1][:4],
            rng.choice(QUANTIZATIONS).lower(),
            f"{rng.choice(ARCHITECTURES)} {rng.choice(QUANTIZATIONS)}",
            name,
            "",
        )))  # fmt: skip
    search_times, server_times, catalog_times = [], [], []
    with httpx.Client(base_url=server.url, timeout=60) as http:
        http.get("/ui/api/catalog").raise_for_status()  # the index is built once, untimed
        for number, query in enumerate(queries):
            start = time.perf_counter()
            answer = http.get("/ui/api/catalog", params={"q": query, "n": 50})
            search_times.append(time.perf_counter() - start)
            answer.raise_for_status()
            server_times.append(float(answer.headers["Server-Timing"].split("dur=")[1]) / 1000)
            if number % 10 == 0:
                start = time.perf_counter()
                http.get("/v2/_catalog", params={"n": len(names)}).raise_for_status()
                catalog_times.append(time.perf_counter() - start)
    return search_times, server_times, catalog_times


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def run(options: Options) -> FamilyResult:
    root = options.workdir / "registry"
    started = time.perf_counter()
    names = write_repositories(root, REPOSITORIES)
    written = time.perf_counter() - started
    rounds = max(options.repeat, 5)
    with start_mdl_registry(root, "--no-access-log") as server:
        cold_paint, cold_results = page_loads(server, 1)  # builds the index
        paints, results = page_loads(server, rounds)
        search_times, server_times, catalog_times = searches(server, names)
    timings = (
        Timing("first load FCP (index build)", samples=cold_paint),
        Timing("first load results", samples=cold_results),
        Timing("page FCP", samples=paints),
        Timing("page first results", samples=results),
        Timing("search (HTTP, loopback)", samples=search_times),
        Timing("search (server, Server-Timing)", samples=server_times),
        Timing("baseline GET /v2/_catalog", samples=catalog_times),
    )
    worst = max(results)
    search_p50, search_p95 = statistics.median(search_times), percentile(search_times, 0.95)
    server_p50, server_p95 = statistics.median(server_times), percentile(server_times, 0.95)
    checks = (
        Check("page FCP, median", statistics.median(paints), "s", "≤ 1 s",
              statistics.median(paints) <= PAGE_GOAL_S),
        Check("first results, median", statistics.median(results), "s", "≤ 1 s",
              statistics.median(results) <= PAGE_GOAL_S),
        Check("first results, worst", worst, "s", "≤ 1 s", worst <= PAGE_GOAL_S),
        Check("first load (index build)", cold_results[0], "s", "info", None),
        Check("search p50, server", server_p50, "s", "≤ 0.1 s", server_p50 <= SEARCH_GOAL_S),
        Check("search p95, server", server_p95, "s", "≤ 0.1 s", server_p95 <= SEARCH_GOAL_S),
        Check("search p50, HTTP", search_p50, "s", "≤ 0.1 s", search_p50 <= SEARCH_GOAL_S),
        Check("search p95, HTTP", search_p95, "s", "≤ 0.1 s", search_p95 <= SEARCH_GOAL_S),
        ratio_check("search p50 / _catalog", search_p50 / statistics.median(catalog_times), None),
    )  # fmt: skip
    notes = (
        f"{REPOSITORIES} model repositories written through the storage driver in {written:.1f} s",
        f"page: {rounds} loads of /ui, each in a fresh chromium context (no cache); times from "
        "navigation start; first results = the app's performance mark after the first 50 rows",
        f"search: {SEARCHES} queries (name parts, quantizations, 'arch quant', whole names, "
        "empty) over one keep-alive connection, timed by the client (HTTP) and by the server "
        "(its Server-Timing header); baseline: /v2/_catalog every 10th",
    )
    return FamilyResult(NAME, "registry browser (2,000 repositories)", notes, timings, checks)
