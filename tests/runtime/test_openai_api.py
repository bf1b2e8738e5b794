"""OpenAI's API through the real ``openai`` Python client against a real ``mdl serve``."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator

import ollama
import openai
import pytest
from ggufs import vocab
from serving import TOOL_CALL_SCHEMA, WEATHER_TOOL, Served

GREEDY = {"temperature": 0, "max_tokens": 12}


@pytest.fixture(scope="module")
def client(served: Served) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0) as client:
        yield client


@pytest.fixture(scope="module")
def native(served: Served) -> Iterator[ollama.Client]:
    with ollama.Client(host=served.url) as client:
        yield client


def test_chat_completion_equals_the_native_chat(
    client: openai.OpenAI, native: ollama.Client
) -> None:
    messages = [{"role": "user", "content": "cat"}]
    answer = client.chat.completions.create(model="tiny-go", messages=messages, **GREEDY)  # type: ignore[arg-type]
    expected = native.chat(model="tiny-go", messages=messages, options={"temperature": 0})
    choice = answer.choices[0]
    assert choice.message.role == "assistant" and choice.finish_reason == "length"
    assert choice.message.content == expected.message.content
    assert answer.model == "tiny-go" and answer.id.startswith("chatcmpl-")
    assert answer.usage and answer.usage.completion_tokens == 12
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + 12


def test_streamed_chat_completion(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "dog"}]
    whole = client.chat.completions.create(model="tiny-go", messages=messages, **GREEDY)  # type: ignore[arg-type]
    stream = client.chat.completions.create(
        model="tiny-go",
        messages=messages,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
        **GREEDY,  # type: ignore[arg-type]
    )
    with stream:
        chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    finals = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finals == ["length"]
    assert chunks[-1].usage and chunks[-1].usage.completion_tokens == 12


def test_completion_and_its_stream(client: openai.OpenAI) -> None:
    whole = client.completions.create(model="tiny", prompt="hello", **GREEDY)  # type: ignore[arg-type]
    assert whole.choices[0].text and whole.choices[0].finish_reason == "length"
    assert whole.usage and whole.usage.completion_tokens == 12
    stream = client.completions.create(model="tiny", prompt="hello", stream=True, **GREEDY)  # type: ignore[arg-type]
    with stream:
        text = "".join(c.choices[0].text for c in stream if c.choices)
    assert text == whole.choices[0].text


def test_stop_and_seed_pass_through(client: openai.OpenAI) -> None:
    free = client.completions.create(model="tiny", prompt="hello", **GREEDY).choices[0].text  # type: ignore[arg-type]
    stop = free[4:7]
    cut = client.completions.create(model="tiny", prompt="hello", stop=[stop], seed=1, **GREEDY)  # type: ignore[arg-type]
    assert cut.choices[0].text == free[: free.index(stop)]
    assert cut.choices[0].finish_reason == "stop"


def test_logit_bias_reaches_the_sampler(client: openai.OpenAI, served: Served) -> None:
    tokens, _, _ = vocab()
    q = tokens.index("q")
    biased = client.completions.create(
        model="tiny",
        prompt="hello",
        logit_bias={str(q): 100},
        **GREEDY,  # type: ignore[arg-type]
    )
    assert biased.choices[0].text == "q" * 12
    free = client.completions.create(model="tiny", prompt="hello", **GREEDY).choices[0].text  # type: ignore[arg-type]
    assert free != biased.choices[0].text
    for bad in ({"x": 1}, {str(q): 101}, [1, 2]):
        body = {"model": "tiny", "prompt": "hello", "logit_bias": bad}
        status, answer = served.request("POST", "/v1/completions", body)
        assert status == 400 and "logit_bias" in answer["error"]["message"]


def test_json_response_format(client: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    answer = client.chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": "number"}],
        response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": schema}},
        temperature=0,
        max_tokens=200,
    )
    assert isinstance(json.loads(answer.choices[0].message.content or "")["n"], int)


def test_tool_calls(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(
        model="tiny-tools",
        messages=[{"role": "user", "content": "weather in rome"}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "call", "schema": TOOL_CALL_SCHEMA},
        },
        temperature=0,
        max_tokens=200,
    )
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments)["city"] in ("Paris", "Rome")


def test_embeddings_base64_by_default_and_float(
    client: openai.OpenAI, native: ollama.Client
) -> None:
    default = client.embeddings.create(model="tiny", input=["hello world", "cat"])
    assert len(default.data) == 2 and [d.index for d in default.data] == [0, 1]
    assert len(default.data[0].embedding) == 64
    floats = client.embeddings.create(model="tiny", input="hello world", encoding_format="float")
    assert floats.data[0].embedding == pytest.approx(default.data[0].embedding, abs=1e-6)
    ollamas = native.embed(model="tiny", input="hello world").embeddings[0]
    assert floats.data[0].embedding == pytest.approx(ollamas, abs=1e-6)
    assert default.usage.prompt_tokens > 0


def test_embeddings_wire_format_is_base64_float32(served: Served) -> None:
    status, body = served.request(
        "POST", "/v1/embeddings", {"model": "tiny", "input": "hi", "encoding_format": "base64"}
    )
    assert status == 200
    raw = base64.b64decode(body["data"][0]["embedding"])
    assert len(raw) == 64 * 4 and all(abs(x) <= 1 for x in struct.unpack("<64f", raw))


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"tiny:latest", "tiny-go:latest"} <= ids
    assert client.models.retrieve("tiny").id == "tiny:latest"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nosuch")


def test_errors_come_in_openai_shape(client: openai.OpenAI, served: Served) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="nosuch", messages=[{"role": "user", "content": "x"}])
    assert "nosuch" in str(missing.value)
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "x"}], temperature=-1
        )
    assert "temperature" in str(bad.value)
    status, body = served.request("POST", "/v1/chat/completions", b"{oops")
    assert status == 400 and body["error"]["type"] == "invalid_request_error"
    assert "invalid JSON" in body["error"]["message"]
