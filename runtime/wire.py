"""Runner values as channel messages (JSON objects) and back. Pure.

Server to worker: ``load``, ``complete``, ``embed``, ``cancel``, ``exit`` (key ``op``).
Worker to server: ``loaded``, ``done``, ``failed``, ``embeddings`` (key ``ev``); tokens travel as
text frames (see ``channel.py``). Every message but ``load`` and ``exit`` names its request's
``id``.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from mdl.runtime.runner import (
    CompletionRequest,
    Done,
    Embeddings,
    Failed,
    LoadSpec,
    ModelFacts,
    Sampling,
)

Message = dict[str, Any]


def load_message(spec: LoadSpec) -> Message:
    return {"op": "load", "spec": asdict(spec)}


def load_spec(message: Message) -> LoadSpec:
    spec = message["spec"]
    return LoadSpec(**{**spec, "adapters": tuple(spec["adapters"])})


def complete_message(request_id: int, request: CompletionRequest) -> Message:
    return {"op": "complete", "id": request_id, "request": asdict(request)}


def completion_request(message: Message) -> CompletionRequest:
    request = message["request"]
    sampling = request["sampling"]
    return CompletionRequest(
        prompt=request["prompt"],
        sampling=Sampling(
            **{
                **sampling,
                "stop": tuple(sampling["stop"]),
                "logit_bias": tuple((int(t), float(b)) for t, b in sampling["logit_bias"]),
            }
        ),
        context=tuple(request["context"]),
        format=request["format"],
        want_context=request["want_context"],
    )


def embed_message(request_id: int, texts: list[str], truncate: bool) -> Message:
    return {"op": "embed", "id": request_id, "texts": texts, "truncate": truncate}


def cancel_message(request_id: int) -> Message:
    return {"op": "cancel", "id": request_id}


def event_message(request_id: int, event: ModelFacts | Done | Failed | Embeddings) -> Message:
    kind = {ModelFacts: "loaded", Done: "done", Failed: "failed", Embeddings: "embeddings"}
    return {"ev": kind[type(event)], "id": request_id, **asdict(event)}


def event(message: Message) -> ModelFacts | Done | Failed | Embeddings:
    fields = {k: v for k, v in message.items() if k not in ("ev", "id")}
    kind = message.get("ev")
    if kind == "loaded":
        return ModelFacts(**fields)
    if kind == "done":
        return Done(**{**fields, "context": tuple(fields["context"])})
    if kind == "failed":
        return Failed(**fields)
    if kind == "embeddings":
        vectors = tuple(tuple(v) for v in fields["vectors"])
        return Embeddings(vectors, fields["prompt_tokens"])
    raise ValueError(f"unknown worker event {kind!r}")
