"""Random JSON at the runtime's endpoints never gives a 500, a traceback or unbounded memory.

Bodies are built from each endpoint's own field names with random JSON values (and random
options), so most examples get past JSON parsing into validation, templates and the runner.
Generation is kept to a few tokens, so the whole run takes well under a minute.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serving import Served

FIELDS = {
    "/api/generate": ["model", "prompt", "suffix", "system", "template", "raw", "context",
                      "format", "keep_alive", "images", "stream", "options"],
    "/api/chat": ["model", "messages", "tools", "format", "keep_alive", "stream", "options"],
    "/api/show": ["model", "name", "verbose"],
    "/api/create": ["model", "from", "files", "adapters", "template", "system", "parameters",
                    "messages", "license", "modelfile", "stream"],
    "/api/embed": ["model", "input", "truncate", "dimensions", "keep_alive", "options"],
    "/api/embeddings": ["model", "prompt", "options"],
    "/api/copy": ["source", "destination"],
    "/v1/chat/completions": ["model", "messages", "tools", "tool_choice", "response_format",
                             "temperature", "top_p", "max_tokens", "seed", "stop", "n", "stream",
                             "stream_options", "frequency_penalty", "presence_penalty"],
    "/v1/completions": ["model", "prompt", "suffix", "max_tokens", "seed", "stop", "stream",
                        "temperature"],
    "/v1/embeddings": ["model", "input", "encoding_format", "dimensions"],
}  # fmt: skip
OPTIONS = ["num_ctx", "num_batch", "num_thread", "num_keep", "seed", "top_k", "top_p",
           "min_p", "typical_p", "repeat_last_n", "temperature", "repeat_penalty",
           "presence_penalty", "frequency_penalty", "mirostat", "stop", "use_mmap", "tfs_z",
           "bogus"]  # fmt: skip
NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 1, 2**31 - 1, 2**31, 2**32, 2**63, -(2**63) - 1]),
    st.floats(allow_nan=False, allow_infinity=False),
)
SCALARS = st.one_of(
    st.none(), st.booleans(), NUMBERS, st.text(max_size=20),
    st.sampled_from(["tiny", "tiny-go", "nosuch", "json", "5m", "-1", "{{ .Prompt }}",
                     "{{ range .Messages }}{{ .Content }}{{ end }}", "{% for m in messages %}"
                     "{{ m.content }}{% endfor %}", "{{ index .Messages 3 }}", "sha256:00"]),
)  # fmt: skip
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
MESSAGES = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant", "system", "tool", "robot"]),
         "content": st.one_of(st.text(max_size=40), JSON)},
        optional={"images": JSON, "tool_calls": JSON},
    ),
    max_size=4,
)  # fmt: skip
MODEL = st.sampled_from(["tiny", "tiny-go", "tiny-tools"])
TEXT = st.text(max_size=40)
CHAT = st.lists(
    st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system"]),
                           "content": TEXT}),
    min_size=1, max_size=4,
)  # fmt: skip
VALID = {
    "/api/generate": st.fixed_dictionaries(
        {"model": MODEL, "prompt": TEXT, "stream": st.booleans()}
    ),
    "/api/chat": st.fixed_dictionaries({"model": MODEL, "messages": CHAT, "stream": st.booleans()}),
    "/api/show": st.fixed_dictionaries({"model": MODEL}),
    "/api/create": st.fixed_dictionaries(
        {"model": st.sampled_from(["fz-a", "fz-b"]), "from": MODEL, "system": TEXT,
         "stream": st.booleans()}
    ),
    "/api/embed": st.fixed_dictionaries({"model": MODEL, "input": st.one_of(TEXT, st.lists(TEXT))}),
    "/api/embeddings": st.fixed_dictionaries({"model": MODEL, "prompt": TEXT}),
    "/api/copy": st.fixed_dictionaries({"source": MODEL, "destination": st.just("fz-copy")}),
    "/v1/chat/completions": st.fixed_dictionaries(
        {"model": MODEL, "messages": CHAT, "stream": st.booleans()}
    ),
    "/v1/completions": st.fixed_dictionaries({"model": MODEL, "prompt": TEXT.filter(bool)}),
    "/v1/embeddings": st.fixed_dictionaries({"model": MODEL, "input": TEXT.filter(bool)}),
}  # fmt: skip
"""A body each endpoint answers with 200; examples then spoil some of its fields."""
OPTION_VALUES = st.dictionaries(
    st.sampled_from(OPTIONS),
    st.one_of(st.integers(-2, 40000), st.floats(0, 2), NUMBERS, JSON),
    max_size=3,
)


@st.composite
def bodies(draw: st.DrawFn, path: str) -> dict[str, Any]:
    body: dict[str, Any] = dict(draw(VALID[path]))
    for name in draw(st.lists(st.sampled_from(FIELDS[path]), unique=True, max_size=2)):
        body[name] = draw(MESSAGES if name == "messages" else JSON)
    if "options" in FIELDS[path] and draw(st.booleans()):
        body["options"] = draw(OPTION_VALUES)
    # keep every answer a few tokens long, whatever else was drawn
    if isinstance(body.get("options"), dict):
        body["options"] = {**body["options"], "num_predict": 2}
    elif "options" in FIELDS[path]:
        body["options"] = {"num_predict": 2}
    if path.startswith("/v1/") and "max_tokens" in FIELDS[path]:
        body["max_tokens"] = 2
    return body


REQUESTS = st.sampled_from(sorted(FIELDS)).flatmap(
    lambda path: st.tuples(st.just(path), bodies(path))
)


@pytest.fixture(scope="module")
def http(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=120) as client:
        yield client


def rss(served: Served) -> int:
    assert served.process is not None
    status = Path(f"/proc/{served.process.pid}/status").read_text()
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def memory(served: Served) -> Iterator[None]:
    before = rss(served)
    yield
    assert rss(served) - before < 300 << 20, "the server's memory grew by more than 300 MiB"


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)  # fmt: skip
@given(request=REQUESTS)
def test_random_bodies_never_get_a_server_error(
    http: httpx.Client, memory: None, request: tuple[str, dict[str, Any]]
) -> None:
    path, body = request
    response = http.post(path, json=body)
    assert response.status_code < 500, (path, body, response.text)
    assert "Traceback" not in response.text and '"error": "internal' not in response.text
    if response.status_code >= 400:
        error = response.json()["error"]
        assert isinstance(error["message"] if path.startswith("/v1/") else error, str)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(
    path=st.sampled_from(sorted(FIELDS)),
    body=st.binary(max_size=64),
    kind=st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded",
                          "application/vnd.x+json", "", "multipart/form-data"]),
)  # fmt: skip
def test_random_bytes_never_get_a_server_error(
    http: httpx.Client, memory: None, path: str, body: bytes, kind: str
) -> None:
    response = http.post(path, content=body, headers={"Content-Type": kind} if kind else {})
    assert 400 <= response.status_code < 500, (path, body, response.text)


GO_PIECES = ["{{", "}}", "{{-", "-}}", " ", ".Prompt", ".System", ".Messages", ".Role", "$",
             "$x := ", "range ", "if ", "with ", "else", "end", "break", "index ", "slice ",
             "printf ", '"%d"', '"%s"', '"%999d"', "len ", "json ", "eq ", "lt ", "and ", "(",
             ")", "|", "1", "-1", "2.5", "99999999999999999999", "nil", "true", "x"]  # fmt: skip
JINJA_PIECES = ["{%", "%}", "{{", "}}", " ", "for ", "in ", "endfor", "if ", "endif", "set ",
                "messages", "m", ".content", "[0]", "[-1]", "range(", ")", "|", "length",
                "tojson", "center(", "join", "~", "+", "*", "%", "'x'", "3", "99999999", ",",
                "namespace(", "raise_exception(", "loop.index", "macro ", "endmacro"]  # fmt: skip
TEMPLATES = st.one_of(
    st.lists(st.sampled_from(GO_PIECES), max_size=14).map("".join),
    st.lists(st.sampled_from(JINJA_PIECES), max_size=14).map(
        lambda p: "{%- set _ = 0 -%}" + "".join(p)
    ),
)


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(template=TEMPLATES, prompt=TEXT)
def test_random_templates_are_answered_or_refused(
    http: httpx.Client, memory: None, template: str, prompt: str
) -> None:
    body = {"model": "tiny", "prompt": prompt or "hi", "template": template, "stream": False,
            "options": {"num_predict": 1}}  # fmt: skip
    response = http.post("/api/generate", json=body)
    assert response.status_code in (200, 400), (template, response.text)
