"""Ollama's API through the real ``ollama`` Python client against a real ``mdl serve``.

The tiny models run for real (llama.cpp in worker processes); where an answer can be predicted
it is compared with llama-cpp-python called directly on the same GGUF files.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import ollama
import pytest
from llama_cpp import Llama
from serving import GO_TEMPLATE, TOOL_CALL_SCHEMA, WEATHER_TOOL, Served

GREEDY = {"temperature": 0, "repeat_penalty": 1.0, "num_predict": 12}
CHATML_GO_PROMPT = (
    "<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n"
    "<|im_start|>assistant\nworld<|im_end|>\n<|im_start|>user\ncat<|im_end|>\n"
    "<|im_start|>assistant\n"
)


@pytest.fixture(scope="module")
def client(served: Served) -> Iterator[ollama.Client]:
    with ollama.Client(host=served.url) as client:
        yield client


def direct(model: Path, prompt: str, lora: Path | None = None) -> str:
    """What llama-cpp-python answers itself, greedy, 12 tokens."""
    extra = {"lora_path": str(lora)} if lora else {}
    llm = Llama(model_path=str(model), n_ctx=512, n_threads=2, verbose=False, **extra)
    try:
        out = llm.create_completion(prompt, max_tokens=12, temperature=0.0, repeat_penalty=1.0)
        return str(out["choices"][0]["text"])
    finally:
        llm.close()


def test_raw_generate_is_what_llama_cpp_answers(client: ollama.Client, models_dir: Path) -> None:
    answer = client.generate(model="tiny", prompt="hello world", raw=True, options=GREEDY)
    assert answer.response == direct(models_dir / "tiny.gguf", "hello world")
    assert answer.done and answer.done_reason == "length"
    assert answer.eval_count == 12 and answer.prompt_eval_count
    assert answer.total_duration and answer.total_duration >= (answer.eval_duration or 0) > 0


def test_lora_adapter_applies(client: ollama.Client, models_dir: Path) -> None:
    lora = client.generate(model="tiny-lora", prompt="hello", raw=True, options=GREEDY)
    plain = client.generate(model="tiny", prompt="hello", raw=True, options=GREEDY)
    assert lora.response == direct(models_dir / "tiny.gguf", "hello", models_dir / "lora.gguf")
    assert lora.response != plain.response


def test_all_adapters_apply(client: ollama.Client) -> None:
    two = client.generate(model="tiny-go", prompt="hello", raw=True, options=GREEDY)
    one = client.generate(model="tiny-lora", prompt="hello", raw=True, options=GREEDY)
    assert two.response != one.response


def test_streamed_generate_adds_up_to_the_whole_answer(client: ollama.Client) -> None:
    whole = client.generate(model="tiny", prompt="the cat", options=GREEDY)
    chunks = list(client.generate(model="tiny", prompt="the cat", options=GREEDY, stream=True))
    assert len(chunks) > 2 and all(not c.done for c in chunks[:-1])
    assert "".join(c.response or "" for c in chunks) == whole.response
    assert chunks[-1].done_reason == "length" and chunks[-1].context == whole.context
    assert chunks[-1].eval_count == 12


def test_chat_applies_go_template_system_and_seed_messages(client: ollama.Client) -> None:
    """params.json (num_predict 12, temperature 0), SYSTEM, MESSAGE and TEMPLATE all apply: the
    answer equals a raw generate of the prompt they make."""
    chat = client.chat(model="tiny-go", messages=[{"role": "user", "content": "cat"}])
    raw = client.generate(model="tiny-go", prompt=CHATML_GO_PROMPT, raw=True)
    assert chat.message.role == "assistant"
    assert chat.message.content == raw.response and chat.eval_count == 12


def test_chat_with_the_ggufs_jinja_template(client: ollama.Client) -> None:
    chat = client.chat(
        model="tiny", messages=[{"role": "user", "content": "hello"}], options=GREEDY
    )
    prompt = "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"
    raw = client.generate(model="tiny", prompt=prompt, raw=True, options=GREEDY)
    assert chat.message.content == raw.response != ""


def test_streamed_chat_chunks_all_carry_the_role(client: ollama.Client) -> None:
    messages = [{"role": "user", "content": "dog"}]
    chunks = list(client.chat(model="tiny-go", messages=messages, stream=True))
    assert all(c.message.role == "assistant" for c in chunks)
    whole = client.chat(model="tiny-go", messages=messages)
    assert "".join(c.message.content or "" for c in chunks) == whole.message.content


def test_generate_system_overrides_the_models(client: ollama.Client) -> None:
    mine = client.generate(model="tiny-go", prompt="cat", system="be long")
    prompt = CHATML_GO_PROMPT.replace("be brief", "be long")
    assert mine.response == client.generate(model="tiny-go", prompt=prompt, raw=True).response


def test_a_request_template_replaces_the_models(client: ollama.Client) -> None:
    """It is rendered as Ollama renders an old-style template: once per exchange (here the
    model's seed exchange, then the prompt), with ``{{ .Response }}`` appended."""
    mine = client.generate(model="tiny-go", prompt="cat", template="Q: {{ .Prompt }} A:")
    raw = client.generate(model="tiny-go", prompt="Q: hello A:worldQ: cat A:", raw=True)
    assert mine.response == raw.response


def test_stop_sequence_stops(client: ollama.Client) -> None:
    free = client.generate(model="tiny", prompt="hello", raw=True, options=GREEDY).response
    stop = free[5:8]
    options = {**GREEDY, "stop": [stop]}
    stopped = client.generate(model="tiny", prompt="hello", raw=True, options=options)
    assert stopped.response == free[: free.index(stop)]
    assert stopped.done_reason == "stop"
    streamed = client.generate(model="tiny", prompt="hello", raw=True, options=options, stream=True)
    assert "".join(c.response or "" for c in streamed) == stopped.response


def test_json_schema_format_constrains_the_answer(client: ollama.Client) -> None:
    schema = {
        "type": "object",
        "properties": {"ok": {"type": "boolean"}},
        "required": ["ok"],
        "additionalProperties": False,
    }
    options = {"temperature": 0, "num_predict": 200}
    answer = client.generate(model="tiny", prompt="say", format=schema, options=options)
    assert json.loads(answer.response)["ok"] in (True, False)


def test_chat_with_tools_returns_tool_calls(client: ollama.Client) -> None:
    messages = [{"role": "user", "content": "weather in paris"}]
    options = {"num_predict": 200}
    reply = client.chat(
        model="tiny-tools", messages=messages, tools=[WEATHER_TOOL], format=TOOL_CALL_SCHEMA,
        options=options,
    )  # fmt: skip
    (call,) = reply.message.tool_calls or []
    assert call.function.name == "get_weather"
    assert call.function.arguments["city"] in ("Paris", "Rome")
    assert reply.message.content == ""
    streamed = client.chat(
        model="tiny-tools", messages=messages, tools=[WEATHER_TOOL], format=TOOL_CALL_SCHEMA,
        options=options, stream=True,
    )  # fmt: skip
    calls = [c for chunk in streamed for c in chunk.message.tool_calls or []]
    assert [c.function.arguments for c in calls] == [call.function.arguments]


def test_tools_need_a_template_that_offers_them(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        client.chat(model="tiny", messages=[{"role": "user", "content": "x"}], tools=[WEATHER_TOOL])
    assert caught.value.status_code == 400 and "tools" in caught.value.error


def test_embed_gives_unit_vectors(client: ollama.Client) -> None:
    result = client.embed(model="tiny", input=["hello world", "the cat"])
    assert len(result.embeddings) == 2 and len(result.embeddings[0]) == 64
    for vector in result.embeddings:
        assert abs(sum(x * x for x in vector) - 1.0) < 1e-4
    assert result.embeddings[0] != result.embeddings[1]
    again = client.embed(model="tiny", input="hello world")
    assert again.embeddings[0] == pytest.approx(result.embeddings[0], abs=1e-5)
    legacy = client.embeddings(model="tiny", prompt="hello world")
    assert len(legacy.embedding) == 64


def test_list_show_and_ps(client: ollama.Client) -> None:
    client.generate(model="tiny-go", prompt="")  # an empty prompt loads the model
    names = {m.model for m in client.list().models}
    assert {"tiny:latest", "tiny-go:latest", "tiny-b:latest"} <= names
    listed = next(m for m in client.list().models if m.model == "tiny:latest")
    assert listed.digest and listed.size and listed.details and listed.details.family == "llama"
    shown = client.show("tiny-go")
    assert shown.template == GO_TEMPLATE
    assert shown.modelfile and "ADAPTER sha256:" in shown.modelfile
    assert shown.parameters and "temperature" in shown.parameters
    assert shown.modelinfo and shown.modelinfo["general.architecture"] == "llama"
    assert shown.details and shown.details.quantization_level == "F32"
    assert shown.capabilities == ["completion"]
    loaded = {m.model for m in client.ps().models}
    assert "tiny-go:latest" in loaded


def test_preload_then_unload(client: ollama.Client, served: Served) -> None:
    loaded = client.generate(model="tiny-b", prompt="", keep_alive="1m")
    assert loaded.done_reason == "load" and "tiny-b:latest" in served.ps()
    unloaded = client.generate(model="tiny-b", prompt="", keep_alive=0)
    assert unloaded.done_reason == "unload" and "tiny-b:latest" not in served.ps()


def test_copy_then_delete(client: ollama.Client) -> None:
    client.copy("tiny", "tiny-copy:1")
    assert client.generate(model="tiny-copy:1", prompt="hi", options=GREEDY).response
    client.delete("tiny-copy:1")
    with pytest.raises(ollama.ResponseError) as caught:
        client.show("tiny-copy:1")
    assert caught.value.status_code == 404


def test_create_from_an_uploaded_blob(client: ollama.Client, models_dir: Path) -> None:
    digest = client.create_blob(models_dir / "tiny-b.gguf")
    client.create(
        model="made:1",
        files={"tiny-b.gguf": digest},
        system="made here",
        parameters={"temperature": 0, "stop": ["zz"]},
    )
    shown = client.show("made:1")
    assert shown.modelfile and "made here" in shown.modelfile
    assert client.generate(model="made:1", prompt="hi", options={"num_predict": 3}).done


def test_create_refuses_server_paths(client: ollama.Client, models_dir: Path) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        client.create(model="sneaky", from_=str(models_dir / "tiny.gguf"))
    assert caught.value.status_code == 400 and "path" in caught.value.error


def test_unknown_model_is_404(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        client.generate(model="nosuch", prompt="hi")
    assert caught.value.status_code == 404 and "nosuch" in caught.value.error
    with pytest.raises(ollama.ResponseError) as streamed:
        list(client.chat(model="nosuch", messages=[{"role": "user", "content": "hi"}], stream=True))
    assert streamed.value.status_code == 404


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"temperature": "hot"}, ["temperature", "number"]),
        ({"temprature": 0.5}, ["unknown option", "temprature"]),
        ({"num_ctx": -5}, ["num_ctx"]),
        ({"stop": [1, 2]}, ["stop"]),
    ],
)
def test_bad_options_are_400(
    client: ollama.Client, options: dict[str, object], words: list[str]
) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        client.generate(model="tiny", prompt="hi", options=options)
    assert caught.value.status_code == 400
    assert all(word in caught.value.error for word in words)


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        ("/api/generate", b"{not json", 400, "invalid JSON"),
        ("/api/generate", b"[1, 2]", 400, "JSON object"),
        ("/api/generate", b'{"prompt": "hi"}', 400, "model is required"),
        ("/api/generate", b'{"model": "Bad Name!", "prompt": "hi"}', 400, "invalid reference"),
        (
            "/api/chat",
            b'{"model": "tiny", "messages": [{"role": "robot", "content": "x"}]}',
            400,
            "role",
        ),
        ("/api/chat", b'{"model": "tiny", "messages": "hi"}', 400, "messages"),
        (
            "/api/generate",
            b'{"model": "tiny", "prompt": "x", "keep_alive": "soon"}',
            400,
            "duration",
        ),
        ("/api/generate", b'{"model": "tiny", "prompt": "x", "format": "yaml"}', 400, "format"),
        ("/api/generate", b'{"model": "tiny", "prompt": "x", "suffix": "y"}', 400, "insert"),
        (
            "/api/generate",
            b'{"model": "tiny", "prompt": "x", "template": "{{ .P"}',
            400,
            "template",
        ),
        ("/api/show", b'{"model": "nosuch"}', 404, "not found"),
        ("/api/nothing", b"{}", 404, "no such endpoint"),
    ],
)
def test_bad_requests_get_a_clear_error(
    served: Served, path: str, body: bytes, status: int, words: str
) -> None:
    got, answer = served.request("POST", path, body)
    assert got == status, answer
    assert isinstance(answer, dict) and words in answer["error"]
