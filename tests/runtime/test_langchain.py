"""A framework people use through Ollama's API: langchain-ollama's ChatOllama."""

from __future__ import annotations

import ollama
from langchain_ollama import ChatOllama
from serving import Served


def test_chat_ollama_invokes_and_streams(served: Served) -> None:
    chat = ChatOllama(model="tiny-go", base_url=served.url, temperature=0, num_predict=12)
    try:
        reply = chat.invoke("cat")
        streamed = "".join(str(chunk.content) for chunk in chat.stream("cat"))
    finally:
        chat._client.close()  # ChatOllama leaves its HTTP client open
    with ollama.Client(host=served.url) as client:
        native = client.chat(
            model="tiny-go",
            messages=[{"role": "user", "content": "cat"}],
            options={"temperature": 0, "num_predict": 12},
        )
    assert reply.content == native.message.content
    assert streamed == reply.content
