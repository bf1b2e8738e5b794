"""``mdl run MODEL`` on a pseudo-terminal (pexpect), as people use Ollama's: every slash
command, multi-line input, Ctrl-C stopping an answer while the chat goes on, Ctrl-D leaving.

What a chat holds is read back through ``/save`` (a new model with the chat's messages,
system prompt and parameters) and ``/api/show``; answers are compared with the real ``ollama``
client's.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import ollama
import pexpect
import pytest
from serving import Served

PROMPT = ">>> "


@pytest.fixture(scope="module")
def client(served: Served) -> Iterator[ollama.Client]:
    with ollama.Client(host=served.url) as client:
        yield client


def chat(served: Served, model: str) -> pexpect.spawn:
    child = pexpect.spawn(
        sys.executable,
        ["-m", "mdl.cli", "run", model],
        env=served.env,
        encoding="utf-8",
        timeout=60,
        dimensions=(50, 250),
    )
    child.expect(f"Chatting with {model}")
    child.expect_exact(PROMPT)
    return child


def say(child: pexpect.spawn, line: str, *expected: str) -> None:
    """Send a line; expect each of ``expected`` in order, then the prompt again."""
    child.sendline(line)
    for text in expected:
        child.expect_exact(text)
    child.expect_exact(PROMPT)


def saved(served: Served, name: str) -> dict[str, Any]:
    """What ``/api/show`` tells of a model (the ``ollama`` client drops ``system``)."""
    status, shown = served.request("POST", "/api/show", {"model": name})
    assert status == 200, shown
    return {
        "system": shown.get("system"),
        "parameters": shown.get("parameters") or "",
        "messages": [(m["role"], m["content"]) for m in shown.get("messages") or []],
    }


def test_every_slash_command(served: Served, client: ollama.Client) -> None:
    child = chat(served, "tiny-go")
    say(child, "/?", "Available commands", "/set parameter NAME VALUE", "/save MODEL", '"""')
    say(child, "/help", "Available commands")
    say(child, "/show info", "Model", "architecture", "llama", "Parameters", "System", "be brief")
    say(child, "/show modelfile", "FROM ", "TEMPLATE", "PARAMETER temperature 0")
    say(child, "/show parameters", "Model defined parameters:", "num_predict", "12")
    say(child, "/show system", "be brief")
    say(child, "/show template", "<|im_start|>")
    say(child, "/show license", "No license was specified for this model.")
    say(child, "/show everything", "Usage: /show info|modelfile|parameters")
    say(child, "/set system be terse", "Set system message.")
    say(child, "/show system", "be terse")
    say(child, "/set parameter num_predict 5", "Set parameter 'num_predict' to '5'")
    say(child, "/set parameter stop END ZZZ", "Set parameter 'stop' to 'END, ZZZ'")
    say(child, "/set parameter nosuch 1", 'unknown parameter "nosuch"')
    say(child, "/set parameter num_predict five", 'invalid integer value "five"')
    say(child, "/set wordwrap", "Usage: /set parameter NAME VALUE | /set system TEXT")
    say(child, "/show parameters", "User defined parameters:", "num_predict", "5", "Model defined")
    say(child, "/nonsense", "Unknown command '/nonsense'. Type /? for help")
    say(child, "cat")
    say(child, "/save chat-1", "Created new model 'chat-1'")

    first = saved(served, "chat-1")
    assert first["system"] == "be terse"
    assert [role for role, _ in first["messages"]] == ["user", "assistant"]
    assert first["messages"][0] == ("user", "cat")  # no command was sent as a prompt
    expected = client.chat(
        model="tiny-go",
        messages=[{"role": "system", "content": "be terse"}, {"role": "user", "content": "cat"}],
        options={"num_predict": 5, "stop": ["END", "ZZZ"]},
    )
    assert first["messages"][1] == ("assistant", expected.message.content)
    assert "num_predict" in first["parameters"] and '"ZZZ"' in first["parameters"]

    say(child, "/clear", "Cleared session context")
    say(child, "/save chat-2", "Created new model 'chat-2'")
    cleared = saved(served, "chat-2")  # only tiny-go's own seed exchange is left
    assert cleared["messages"] == [("user", "hello"), ("assistant", "world")]
    assert cleared["system"] == "be terse"
    say(child, "/load nosuch", "Loading model 'nosuch'", "Couldn't find model 'nosuch'")
    say(child, "/show system", "be terse")  # still the same chat
    say(child, "/load tiny", "Loading model 'tiny'")
    say(child, "/show system", "No system message was specified for this model.")
    say(child, "/load", "Usage: /load MODEL")
    say(child, "/save", "Usage: /save MODEL")
    say(child, "/save chat-3", "Created new model 'chat-3'")
    third = saved(served, "chat-3")
    assert third["system"] is None and "num_predict" in third["parameters"]  # options stay
    assert client.show("chat-3").template == client.show("tiny").template  # from tiny now
    assert client.show("tiny").template != client.show("tiny-go").template
    child.sendline("/bye")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_multi_line_input(served: Served, client: ollama.Client) -> None:
    child = chat(served, "tiny-go")
    child.sendline('"""Hello,')
    child.expect_exact("... ")
    child.sendline("world")
    child.expect_exact("... ")
    say(child, '"""')
    say(child, '"""one line"""')
    child.sendline('/set system """Be')
    child.expect_exact("... ")
    say(child, 'brief."""', "Set system message.")
    say(child, "/save multi", "Created new model 'multi'")
    got = saved(served, "multi")
    assert got["system"] == "Be\nbrief."
    users = [content for role, content in got["messages"] if role == "user"]
    assert users == ["Hello,\nworld\n", "one line"]
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_ctrl_c_stops_the_answer_and_keeps_the_chat(served: Served, client: ollama.Client) -> None:
    child = chat(served, "tiny")
    say(child, "/set parameter num_ctx 16384", "Set parameter")
    say(child, "/set parameter num_predict 15000", "Set parameter")
    child.sendline("hello")
    child.expect_exact("hello")
    child.read_nonblocking(1, timeout=60)  # the answer is being written
    child.sendintr()
    child.expect_exact(PROMPT, timeout=15)  # 15,000 tokens would take minutes
    say(child, "/save cut", "Created new model 'cut'")
    cut = saved(served, "cut")["messages"]
    assert [role for role, _ in cut] == ["user", "assistant"] and cut[1][1]

    child.sendintr()  # at the prompt: only a hint
    child.expect_exact("Use Ctrl-D or /bye to leave.")
    child.expect_exact(PROMPT)
    say(child, "/set parameter num_predict 3", "Set parameter")
    say(child, "again")
    say(child, "/save kept", "Created new model 'kept'")
    kept = saved(served, "kept")["messages"]
    assert kept[:2] == cut and kept[2] == ("user", "again") and kept[3][0] == "assistant"

    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
