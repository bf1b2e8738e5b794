"""The runtime's pure parts: stop sequences, tool calls, options, settings, the channel."""

from __future__ import annotations

import socket

import pytest

from mdl.runtime.channel import WorkerChannel, decode, encode_json, encode_token
from mdl.runtime.config import ServeConfig, parse_host, parse_keep_alive
from mdl.runtime.errors import BadRequest
from mdl.runtime.memory import available_bytes
from mdl.runtime.messages import ToolCall
from mdl.runtime.options import check_options, runner_options, sampling
from mdl.runtime.stops import StopScanner
from mdl.runtime.tools import ToolCallParser, parse_tool_calls
from mdl.spec.footprint import Shape, estimate_bytes


@pytest.mark.parametrize(
    ("pieces", "stops", "shown", "stopped"),
    [
        (["Hel", "lo"], ["<|im_end|>"], "Hello", False),
        (["Hello<|im", "_end|> more"], ["<|im_end|>"], "Hello", True),
        (["ab", "c", "d"], ["cd"], "ab", True),
        (["a<", "b"], ["<|"], "a<b", False),
        (["xSTOPy"], ["STOP", "xS"], "", True),
        (["no stops"], [], "no stops", False),
    ],
)
def test_stop_scanner(pieces: list[str], stops: list[str], shown: str, stopped: bool) -> None:
    scanner = StopScanner(stops)
    text = "".join(scanner.feed(p) for p in pieces) + scanner.flush()
    assert (text, scanner.stopped) == (shown, stopped)


def test_stop_scanner_holds_back_only_a_possible_stop() -> None:
    scanner = StopScanner(["</s>"])
    assert scanner.feed("abc</") == "abc"
    assert scanner.feed("x") == "</x"


@pytest.mark.parametrize(
    ("pieces", "content", "calls"),
    [
        (
            ['<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>'],
            "",
            [("f", {"a": 1})],
        ),
        (
            ['[{"name": "f", "parameters": {}}, ', '{"name": "g", "arguments": "{\\"b\\": 2}"}]'],
            "",
            [("f", {}), ("g", {"b": 2})],
        ),
        (['{"function": {"name": "f", "arguments": {}}}'], "", [("f", {})]),
        (["plain ", "words"], "plain words", []),
        (['{"name": "unknown", "arguments": {}}'], '{"name": "unknown", "arguments": {}}', []),
        (["{not json"], "{not json", []),
    ],
)
def test_tool_call_parser(
    pieces: list[str], content: str, calls: list[tuple[str, dict[str, object]]]
) -> None:
    parser = ToolCallParser({"f", "g"})
    shown = "".join(parser.feed(p) for p in pieces)
    rest, found = parser.finish()
    assert shown + rest == content
    assert [(c.name, dict(c.arguments)) for c in found] == calls


def test_tool_calls_get_ids() -> None:
    (call,) = parse_tool_calls('{"name": "f", "arguments": {}}', {"f"})
    assert call == ToolCall("f", {}, "call_0")


def test_options_are_typed_and_checked() -> None:
    values = check_options({"temperature": 1, "num_ctx": 2048.0, "stop": "x", "mirostat": None,
                            "penalize_newline": True})  # fmt: skip
    assert values == {"temperature": 1.0, "num_ctx": 2048, "stop": ["x"]}
    assert sampling(values).stop == ("x",) and sampling(values).temperature == 1.0
    assert runner_options({}, 512, 2).num_ctx == 512
    assert runner_options({}, 8192, 2).num_ctx == 4096
    assert runner_options({"num_thread": 0}, None, 3).num_thread == 3


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ({"top_k": 1.5}, "top_k"),
        ({"use_mmap": "yes"}, "use_mmap"),
        ({"nonsense": 1}, "unknown option"),
        ({"temperature": -0.1}, "negative"),
        ({"num_ctx": 0}, "num_ctx must be from 1"),
        ({"num_ctx": 2**32}, "num_ctx must be from 1 to 2147483647"),
        ({"seed": 2**32}, "seed must be from"),
        ({"num_thread": 100_000}, "num_thread"),
        ({"temperature": float("inf")}, "finite"),
        ({"top_p": 1e39}, "out of range"),
        ({"num_predict": 10**400}, "num_predict"),
        ([1], "object"),
    ],
)
def test_bad_options(raw: object, words: str) -> None:
    with pytest.raises(BadRequest, match=words):
        check_options(raw)


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [("5m", 300.0), ("1h30m", 5400.0), ("1.5s", 1.5), ("300ms", 0.3), (30, 30.0), ("45", 45.0),
     (0, 0.0), ("0", 0.0), (-1, None), ("-1m", None)],
)  # fmt: skip
def test_keep_alive(raw: object, seconds: float | None) -> None:
    assert parse_keep_alive(raw) == (None if seconds is None else pytest.approx(seconds))


@pytest.mark.parametrize("raw", ["soon", "5 m", "m", True, [1]])
def test_bad_keep_alive(raw: object) -> None:
    with pytest.raises(BadRequest):
        parse_keep_alive(raw)


def test_serve_config_from_env() -> None:
    default = ServeConfig.from_env({})
    assert (default.host, default.port, default.max_loaded, default.keep_alive) == (
        "127.0.0.1", 11434, 3, 300.0
    )  # fmt: skip
    config = ServeConfig.from_env(
        {"MDL_HOST": "http://0.0.0.0:8080", "MDL_MAX_LOADED_MODELS": "1", "MDL_KEEP_ALIVE": "-1",
         "MDL_ORIGINS": "https://app.example.com,chrome-extension://*"}
    )  # fmt: skip
    assert (config.host, config.port, config.max_loaded, config.keep_alive) == (
        "0.0.0.0", 8080, 1, None
    )  # fmt: skip
    assert "https://app.example.com" in config.origins
    assert parse_host(":9000") == ("127.0.0.1", 9000)
    assert parse_host("[::1]:9000") == ("::1", 9000)
    with pytest.raises(BadRequest):
        ServeConfig.from_env({"MDL_MAX_LOADED_MODELS": "none"})


def test_memory_estimate_grows_with_context() -> None:
    shape = Shape(file_bytes=1000, layers=2, embedding=64, heads=4, kv_heads=4, vocab=300)
    assert estimate_bytes(shape, 4096) > estimate_bytes(shape, 512) > 1000
    assert (available_bytes() or 1) > 0


def test_channel_frames_round_trip() -> None:
    assert decode(encode_token("héllo")[4:]) == "héllo"
    assert decode(encode_json({"op": "x", "n": [1]})[4:]) == {"op": "x", "n": [1]}


def test_worker_channel_sees_a_cancel_without_blocking() -> None:
    server, worker = socket.socketpair()
    with server, worker:
        channel = WorkerChannel(worker)
        assert not channel.cancel_requested()
        server.sendall(encode_json({"op": "cancel"}))
        assert channel.cancel_requested()
        server.sendall(encode_json({"op": "complete"}) + encode_token("t"))
        assert channel.recv() == {"op": "complete"} and channel.recv() == "t"
        server.sendall(encode_json({"op": "exit"}))
        assert channel.cancel_requested() and channel.exiting
        server.close()
        assert channel.cancel_requested() and channel.recv() is None
