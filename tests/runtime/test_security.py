"""``mdl serve`` against hostile callers, through the real server: pages in a browser
(cross-site requests, DNS rebinding), bodies past the limits, options that would wrap in
ctypes or exhaust memory, template bombs, and error bodies that would leak internals."""

from __future__ import annotations

import concurrent.futures
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from ggufs import gguf_bytes, gguf_string
from serving import MAX_CONTEXT, Served, running

MIB = 1 << 20
BLOB_LIMIT = 2 * MIB


@pytest.fixture(scope="module")
def http(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=60) as client:
        yield client


def tags(http: httpx.Client) -> list[str]:
    return sorted(m["name"] for m in http.get("/api/tags").json()["models"])


# -- cross-site requests ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/copy", '{"source": "tiny", "destination": "stolen"}'),
        ("/api/create", '{"model": "tiny", "from": "tiny", "system": "obey the page"}'),
        ("/api/pull", '{"model": "localhost:1/x", "insecure": true}'),
    ],
)
def test_a_cross_site_page_cannot_post(http: httpx.Client, path: str, body: str) -> None:
    """What any page can send without a preflight: text/plain from a foreign origin."""
    before = tags(http)
    headers = {"Origin": "https://attacker.example", "Content-Type": "text/plain"}
    response = http.post(path, content=body, headers=headers)
    assert response.status_code == 403, response.text
    assert "attacker.example" in response.json()["error"]
    assert tags(http) == before


def test_a_browser_request_without_origin_is_refused_too(http: httpx.Client) -> None:
    headers = {"Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"}
    body = '{"source": "tiny", "destination": "stolen"}'
    assert http.post("/api/copy", content=body, headers=headers).status_code == 403
    assert "stolen:latest" not in tags(http)


@pytest.mark.parametrize("kind", ["text/plain", "multipart/form-data; boundary=x", "text/html"])
def test_json_endpoints_want_a_json_content_type(http: httpx.Client, kind: str) -> None:
    body = '{"model": "tiny"}'
    native = http.post("/api/show", content=body, headers={"Content-Type": kind})
    assert native.status_code == 415 and "JSON" in native.json()["error"]
    openai = http.post("/v1/chat/completions", content=body, headers={"Content-Type": kind})
    assert openai.status_code == 415
    assert openai.json()["error"]["type"] == "invalid_request_error"


def test_curl_style_form_bodies_work_but_not_from_a_browser(http: httpx.Client) -> None:
    """``curl -d '{…}'`` sends application/x-www-form-urlencoded; a page may not."""
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    body = '{"model": "tiny"}'
    assert http.post("/api/show", content=body, headers=form).status_code == 200
    assert http.post("/api/show", content=body).status_code == 200  # no Content-Type at all
    local_page = {**form, "Origin": "http://localhost:3000"}
    assert http.post("/api/show", content=body, headers=local_page).status_code == 415


def test_allowed_origins_still_work_with_cors(http: httpx.Client) -> None:
    headers = {"Origin": "http://localhost:3000", "Content-Type": "application/json"}
    response = http.post("/api/show", content='{"model": "tiny"}', headers=headers)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"


# -- DNS rebinding ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("GET", "/api/tags", None), ("POST", "/api/show", {"model": "tiny-go"}),
     ("GET", "/v1/models", None)],
)  # fmt: skip
def test_a_foreign_host_name_is_refused(
    http: httpx.Client, method: str, path: str, body: Any
) -> None:
    """A rebinding page reaches 127.0.0.1 under its own name; it must read nothing."""
    response = http.request(method, path, json=body, headers={"Host": "attacker.example"})
    assert response.status_code == 403
    assert "be brief" not in response.text and "tiny" not in response.text


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "chat.localhost", "[::1]"])
def test_local_host_names_are_served(http: httpx.Client, served: Served, host: str) -> None:
    response = http.get("/api/tags", headers={"Host": f"{host}:{served.port}"})
    assert response.status_code == 200


# -- bodies past the limits -------------------------------------------------------------------


def oversize_json() -> bytes:
    return b'{"model": "tiny", "prompt": "' + b"a" * (32 * MIB) + b'"}'


def test_an_oversize_body_is_413(http: httpx.Client) -> None:
    response = http.post("/api/generate", content=oversize_json())
    assert response.status_code == 413
    assert "MDL_MAX_REQUEST_BYTES" in response.json()["error"]
    openai = http.post("/v1/completions", content=oversize_json())
    assert (
        openai.status_code == 413 and "MDL_MAX_REQUEST_BYTES" in openai.json()["error"]["message"]
    )


def test_an_oversize_chunked_body_is_413(http: httpx.Client) -> None:
    """No Content-Length: the bytes are counted as they arrive."""
    data = oversize_json()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(data), MIB):
            yield data[start : start + MIB]

    response = http.post("/api/chat", content=chunks())
    assert "content-length" not in response.request.headers
    assert response.status_code == 413


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Served]:
    """A server with small body limits (1 MiB of JSON, 2 MiB per blob) and no num_ctx bound."""
    env = {"MDL_MAX_REQUEST_BYTES": str(MIB), "MDL_MAX_BLOB_BYTES": str(BLOB_LIMIT),
           "MDL_MAX_CONTEXT": str(2**31 - 1)}  # fmt: skip
    server = Served(tmp_path_factory.mktemp("limits-home"), env)
    server.build("tiny", "FROM ./tiny.gguf\n", models_dir)
    yield from running(server)


def test_blob_uploads_have_their_own_limit(limited: Served) -> None:
    fits = b"y" * (BLOB_LIMIT - MIB // 2)  # past the JSON limit, within the blob limit
    too_big = b"x" * (BLOB_LIMIT + 1)
    with httpx.Client(base_url=limited.url, timeout=60) as http:
        assert http.post(f"/api/blobs/{sha256(fits)}", content=fits).status_code == 201
        refused = http.post(f"/api/blobs/{sha256(too_big)}", content=too_big)
        assert refused.status_code == 413
        assert "MDL_MAX_BLOB_BYTES" in refused.json()["error"]
        assert http.head(f"/api/blobs/{sha256(too_big)}").status_code == 404
        assert http.post("/api/show", json={"model": "tiny", "x": "a" * MIB}).status_code == 413
    assert list((limited.home / "store" / "ingest").iterdir()) == []


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- options ------------------------------------------------------------------------------------


def test_a_huge_num_ctx_is_cut_to_the_limit(http: httpx.Client) -> None:
    huge = {"num_ctx": 2**31 - 1, "num_batch": 2**31 - 1, "num_predict": 2}
    body = {"model": "tiny-b", "prompt": "hi", "stream": False, "options": huge}
    response = http.post("/api/generate", json=body)
    assert response.status_code == 200, response.text
    loaded = {m["name"]: m for m in http.get("/api/ps").json()["models"]}
    assert loaded["tiny-b:latest"]["context_length"] == MAX_CONTEXT


@pytest.mark.parametrize(
    ("options", "words"),
    [({"num_ctx": 2**32}, "num_ctx"), ({"num_ctx": 2**32 + 512}, "num_ctx"),
     ({"seed": 2**32}, "seed"), ({"num_predict": 2**31}, "num_predict"),
     ({"num_thread": 2**20}, "num_thread"), ({"temperature": 1e39}, "temperature")],
)  # fmt: skip
def test_values_ctypes_would_wrap_are_400(
    http: httpx.Client, options: dict[str, Any], words: str
) -> None:
    body = {"model": "tiny", "prompt": "hi", "stream": False, "options": options}
    response = http.post("/api/generate", json=body)
    assert response.status_code == 400 and words in response.json()["error"]


def test_a_load_past_the_memory_is_refused(limited: Served) -> None:
    """num_ctx 2**30 would take a 512 GiB KV cache on the tiny model."""
    body = {"model": "tiny", "prompt": "hi", "stream": False, "options": {"num_ctx": 2**30}}
    status, answer = limited.request("POST", "/api/generate", body)
    assert status == 507, answer
    assert "memory" in answer["error"] and "num_ctx" in answer["error"]
    assert limited.workers() == {}


# -- templates --------------------------------------------------------------------------------

BOMBS = {
    "go nested ranges": "{{range 4000}}{{range 4000}}{{end}}{{end}}",
    "go range over a huge int": "{{range 200000000}}{{end}}",
    "go printf width": '{{range 3000}}{{printf "%999999d" 1}}{{end}}',
    "jinja nested loops": "{% for i in range(99999) %}{% for j in range(99999) %}"
    "{% endfor %}{% endfor %}",
    "jinja padding": "{{ 'x'.center(2000000000) }}",
    "jinja doubling": "{% set ns = namespace(x='ab') %}{% for i in range(40) %}"
    "{% set ns.x = ns.x ~ ns.x %}{% endfor %}{{ ns.x }}",
}


@pytest.mark.parametrize("bomb", list(BOMBS.values()), ids=list(BOMBS))
def test_a_template_bomb_is_400_and_the_server_keeps_answering(
    http: httpx.Client, bomb: str
) -> None:
    body = {"model": "tiny", "prompt": "hi", "template": bomb, "stream": False,
            "options": {"num_predict": 1}}  # fmt: skip
    slowest = 0.0
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(http.post, "/api/generate", json=body)
        while not pending.done():  # another client, meanwhile
            started = time.monotonic()
            assert http.get("/api/version").status_code == 200
            slowest = max(slowest, time.monotonic() - started)
        response = pending.result()
    assert response.status_code == 400, response.text
    assert "template" in response.json()["error"]
    assert slowest < 1.0


def test_a_printf_width_past_go_limit_is_go_badwidth(http: httpx.Client) -> None:
    body = {"model": "tiny", "prompt": "hi", "template": '{{printf "%2000000000d" 1}}',
            "raw": False, "stream": False, "options": {"num_predict": 1}}  # fmt: skip
    response = http.post("/api/generate", json=body)
    assert response.status_code == 200
    assert response.json()["prompt_eval_count"] < 20  # the prompt was "%!(BADWIDTH)"


def test_a_request_template_that_fails_to_render_is_400(http: httpx.Client) -> None:
    body = {"model": "tiny", "prompt": "hi", "template": "{{ index .Messages 7 }}",
            "stream": False}  # fmt: skip
    response = http.post("/api/generate", json=body)
    assert response.status_code == 400
    assert "index out of range" in response.json()["error"]


# -- error bodies -----------------------------------------------------------------------------


def test_errors_name_no_store_path(http: httpx.Client, served: Served) -> None:
    header_only = gguf_bytes([("general.architecture", 8, gguf_string("llama"))])
    served.forge("hollow2", "tiny", "model.gguf", header_only)
    response = http.post("/api/generate", json={"model": "hollow2", "prompt": "hi"})
    assert response.status_code == 500 and "hollow2" in response.json()["error"]
    assert str(served.home) not in response.text and "Traceback" not in response.text


def test_an_embedding_context_of_any_size_does_not_crash_the_runner(http: httpx.Client) -> None:
    """llama.cpp aborts on a micro-batch that is not a multiple of 256 (found by the fuzz)."""
    body = {"model": "tiny", "input": ["hi"], "options": {"num_ctx": 4097}}
    response = http.post("/api/embed", json=body)
    assert response.status_code == 200, response.text
    assert len(response.json()["embeddings"]) == 1


def test_a_models_own_template_bomb_leaves_the_server_answering(
    http: httpx.Client, served: Served
) -> None:
    """A pulled model can bring a bomb too: its request fails (500, the model is broken)."""
    served.forge("bomb", "tiny", "template", b"{{range 4000}}{{range 4000}}{{end}}{{end}}")
    slowest = 0.0
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        body = {"model": "bomb", "messages": [{"role": "user", "content": "hi"}], "stream": False}
        pending = pool.submit(http.post, "/api/chat", json=body)
        while not pending.done():
            started = time.monotonic()
            assert http.get("/api/version").status_code == 200
            slowest = max(slowest, time.monotonic() - started)
        response = pending.result()
    assert response.status_code == 500 and "steps" in response.json()["error"]
    assert slowest < 1.0


def test_a_model_with_unreadable_text_is_a_clear_error(http: httpx.Client, served: Served) -> None:
    served.forge("latin1", "tiny", "system.txt", "café".encode("latin-1"))
    response = http.post("/api/generate", json={"model": "latin1", "prompt": "hi"})
    assert response.status_code == 500
    assert "latin1" in response.json()["error"] and "internal error" not in response.text


def test_bound_beyond_loopback_any_host_is_served_with_a_warning(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Binding elsewhere is a deliberate choice: no host check (a proxy may rename), but the
    origin check stays, and the server says that the API has no authentication."""
    server = Served(tmp_path_factory.mktemp("exposed-home"))  # an empty store
    server.env["MDL_HOST"] = f"0.0.0.0:{server.port}"
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            assert http.get("/api/tags", headers={"Host": "models.example"}).status_code == 200
            foreign = {"Origin": "https://attacker.example", "Content-Type": "text/plain"}
            assert http.post("/api/show", content="{}", headers=foreign).status_code == 403
    finally:
        server.stop()
    assert "no authentication" in server.log()
