"""The runtime's pure parts: stop sequences, tool calls, options, settings, the channel, the
step loop's rules (prompt fit, sequence choice, context shift), the scheduler's gate."""

from __future__ import annotations

import asyncio
import socket

import pytest

from mdl.runtime import spawn
from mdl.runtime.batching import Slot, choose, common_prefix, fit, shift_window
from mdl.runtime.channel import WorkerChannel, decode, encode_json, encode_token
from mdl.runtime.config import ServeConfig, parse_host, parse_keep_alive
from mdl.runtime.errors import BadRequest
from mdl.runtime.memory import available_bytes
from mdl.runtime.messages import ToolCall
from mdl.runtime.options import check_options, runner_options, sampling
from mdl.runtime.scheduler import Gate
from mdl.runtime.stops import StopScanner
from mdl.runtime.tools import ToolCallParser, parse_tool_calls
from mdl.spec.footprint import Shape, estimate_bytes, kv_bytes


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


def test_memory_estimate_grows_with_context_and_sequences() -> None:
    shape = Shape(file_bytes=1000, layers=2, embedding=64, heads=4, kv_heads=4, vocab=300)
    assert estimate_bytes(shape, 4096) > estimate_bytes(shape, 512) > 1000
    one, four = estimate_bytes(shape, 512), estimate_bytes(shape, 512, sequences=4)
    assert four - one == 3 * kv_bytes(shape, 512)
    assert (available_bytes() or 1) > 0


def test_channel_frames_round_trip() -> None:
    assert decode(encode_token(7, "héllo")[4:]) == (7, "héllo")
    assert decode(encode_json({"op": "x", "n": [1]})[4:]) == {"op": "x", "n": [1]}


def test_worker_channel_reassembles_frames_split_across_reads() -> None:
    server, worker = socket.socketpair()
    with server, worker:
        channel = WorkerChannel(worker)
        data = encode_json({"op": "complete", "id": 3}) + encode_token(3, "t")
        server.sendall(data[:5])
        server.sendall(data[5:])
        assert channel.recv() == {"op": "complete", "id": 3} and channel.recv() == (3, "t")
        server.close()
        assert channel.recv() is None


@pytest.mark.parametrize(
    ("length", "n_ctx", "num_keep", "kept"),
    [(10, 16, 4, 10), (40, 16, 4, 12), (40, 16, 0, 12), (40, 16, 100, 12)],
)
def test_fit_leaves_a_quarter_of_the_context_and_keeps_the_start(
    length: int, n_ctx: int, num_keep: int, kept: int
) -> None:
    tokens = list(range(length))
    fitted = fit(tokens, n_ctx, num_keep)
    assert len(fitted) == kept and fitted[0] == 0 and fitted[-1] == length - 1


def test_the_longest_common_prefix_chooses_the_sequence_else_the_least_recently_used() -> None:
    a, b, c = Slot(0, [1, 2, 3, 4], last_used=3), Slot(1, [1, 2, 9], last_used=1), Slot(2, [])
    c.last_used = 2
    assert choose([a, b, c], [1, 2, 3, 5]) == (a, 3)
    assert choose([a, b, c], [1, 2, 3, 4]) == (a, 3)  # one token is always evaluated
    assert choose([a, b, c], [7, 8]) == (b, 0)
    assert choose([a, b, c], [1, 5, 6, 7, 8]) == (b, 1)  # a shares too little: LRU, its prefix
    assert common_prefix([1, 2], [1, 2, 3]) == 2


def test_without_a_cached_prefix_the_sequence_nearest_the_busy_ones_is_chosen() -> None:
    near, far = Slot(1, [5], last_used=2), Slot(7, [6], last_used=1)
    assert choose([near, far], [9, 9], busy=[0, 2]) == (near, 0)  # 0..2, not 0..7
    assert choose([near, far], [9, 9]) == (far, 0)  # nothing busy: least recently used
    assert choose([near, far], [6, 9], busy=[0, 2]) == (far, 1)  # a cached prefix comes first


def test_a_context_shift_keeps_num_keep_and_drops_half_of_the_rest() -> None:
    assert shift_window(100, 4) == (4, 48)
    assert shift_window(100, 0) == (0, 50)
    assert shift_window(10, 100) == (5, 2)  # never keeps more than half


async def _gate_order() -> list[int]:
    gate = Gate(2)
    order: list[int] = []

    async def user(n: int) -> None:
        await gate.acquire()
        order.append(n)

    await gate.acquire()
    await gate.acquire()
    tasks = [asyncio.create_task(user(n)) for n in range(3)]
    await asyncio.sleep(0)
    assert not order and gate.busy == 2
    tasks[1].cancel()  # a waiter that gives up keeps no place
    gate.release()
    gate.release()
    await asyncio.gather(tasks[0], tasks[2])
    assert gate.busy == 2
    return order


def test_the_gate_admits_its_capacity_in_arrival_order() -> None:
    assert asyncio.run(_gate_order()) == [0, 2]


@pytest.mark.parametrize(
    ("code", "what"),
    [
        (-9, "was killed by SIGKILL"),
        (-200, "was killed by signal 200"),
        (3, "exited with status 3"),
    ],
)
def test_describe_exit_names_the_signal_or_status(code: int, what: str) -> None:
    assert spawn.describe_exit("tiny", code) == f"the model runner for tiny {what}"


def test_a_worker_out_of_protocol_tells_the_client_nothing_of_its_reply() -> None:
    from mdl.runtime import spawn

    error = spawn.protocol_error("tiny:latest", {"ev": "odd", "path": "/home/me/.mdl/store"})
    assert "tiny:latest" in str(error) and "server log" in str(error)
    assert "/home" not in str(error) and "odd" not in str(error)
