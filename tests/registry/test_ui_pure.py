"""The registry browser's pure parts: what a config says in each format, index summaries, the
model card's texts, and the search over catalog rows."""

from __future__ import annotations

import json

import pytest

from mdl.registry.catalog_index import Row, search
from mdl.registry.model_card import (
    Summary,
    card,
    config_facts,
    index_summary,
    summary,
    text_layers,
    variant_summary,
)
from mdl.spec import mediatypes as mt
from mdl.spec.descriptor import Descriptor
from mdl.spec.digest import Digest
from mdl.spec.foreign import DOCKER_CONFIG_V02, OLLAMA, OLLAMA_CONFIG, to_docker, to_ollama
from mdl.spec.manifest import Manifest
from mdl.spec.modelpack import ModelConfig

CONFIG = ModelConfig(
    architecture="qwen2", param_size="7.6B", quantization="Q4_K_M", context_length=32768
)


def layer(path: str, data: bytes, media_type: str = mt.MODEL_WEIGHT_CONFIG) -> Descriptor:
    return Descriptor.for_bytes(media_type, data, {mt.ANNOTATION_FILEPATH: path})


def mdl_model() -> tuple[Manifest, bytes]:
    config = json.dumps(CONFIG.to_json()).encode()
    layers = (
        layer(mt.WEIGHTS_FILE, b"GGUF...", mt.MODEL_WEIGHT),
        layer(mt.TEMPLATE_FILE, b"{% for m in messages %}{{ m.content }}{% endfor %}"),
        layer(mt.SYSTEM_FILE, b"Be brief."),
        layer(mt.LICENSE_FILE, b"Apache-2.0", mt.MODEL_DOC),
    )
    return Manifest(Descriptor.for_bytes(mt.MODEL_CONFIG, config), layers), config


@pytest.mark.parametrize("fmt", ["mdl", "ollama", "docker"])
def test_each_format_gives_the_same_facts(fmt: str) -> None:
    model, config = mdl_model()
    if fmt == "ollama":
        config, model = to_ollama(model, CONFIG)
    elif fmt == "docker":
        config, model = to_docker(model, CONFIG)
    facts = config_facts(model, config)
    assert (facts.architecture, facts.param_size, facts.quantization) == (
        "qwen2",
        "7.6B",
        "Q4_K_M",
    )
    assert facts.context_length == (None if fmt == "ollama" else 32768)  # Ollama has no field
    row = summary(model, config)
    assert row.kind == fmt
    assert row.size == model.config.size + sum(x.size for x in model.layers)


@pytest.mark.parametrize(
    "config",
    [b"", b"not json", b"[1, 2]", b'{"config": {"architecture": 7, "contextLength": "8k"}}'],
)
def test_a_strange_config_gives_no_facts_rather_than_an_error(config: bytes) -> None:
    model, _ = mdl_model()
    facts = config_facts(model, config)
    assert facts.architecture is None and facts.context_length is None


def test_an_artifact_that_is_no_model_has_kind_other() -> None:
    config = Descriptor.for_bytes("application/vnd.oci.image.config.v1+json", b"{}")
    image = Manifest(config, (Descriptor.for_bytes("application/octet-stream", b"x"),))
    assert summary(image, b"{}") == Summary("other", config.size + 1)


def test_variant_annotations_win_over_the_config_and_an_index_joins_its_variants() -> None:
    child = Summary("mdl", 100, "llama", "1B", "F32", 2048)
    digest = Digest.of(b"child")
    annotated = Descriptor(
        mt.OCI_MANIFEST,
        digest,
        5,
        {"dev.mdl.variant.quantization": "Q8_0", "dev.mdl.variant.context-length": "4096"},
    )
    variant = variant_summary(annotated, child)
    assert (variant.quantization, variant.context_length, variant.param_size) == (
        "Q8_0",
        4096,
        "1B",
    )
    plain = variant_summary(Descriptor(mt.OCI_MANIFEST, digest, 5), None)
    assert plain == Summary("other", 5)
    joined = index_summary([variant, Summary("mdl", 300, "llama", "1B", "Q4_K_M"), plain])
    assert joined == Summary("index", 300, "llama", "1B", "Q8_0, Q4_K_M", 4096, variants=3)


def test_a_card_reads_texts_by_file_path_and_names_the_template_kind() -> None:
    model, config = mdl_model()
    paths = [path for path, _ in text_layers(model)]
    assert paths == [mt.TEMPLATE_FILE, mt.SYSTEM_FILE, mt.LICENSE_FILE]
    texts = {mt.SYSTEM_FILE: "Be brief.", mt.LICENSE_FILE: "Apache-2.0",
             mt.TEMPLATE_FILE: "{% for m in messages %}{{ m.content }}{% endfor %}"}  # fmt: skip
    signature = {"artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json", "digest": "d"}
    shown = card(model, config, texts, [signature, {"artifactType": "x/y"}])
    assert shown["templateKind"] == "jinja"
    assert shown["system"] == "Be brief." and shown["license"] == ["Apache-2.0"]
    assert [r["kind"] for r in shown["referrers"]] == ["signature", "other"]
    assert [x["file"] for x in shown["layers"]] == [
        "model.gguf",
        "template",
        "system.txt",
        "LICENSE",
    ]


def test_a_big_text_layer_is_listed_but_not_read() -> None:
    big = Descriptor(mt.MODEL_WEIGHT_CONFIG, Digest.of(b"x"), 10**6,
                     {mt.ANNOTATION_FILEPATH: mt.SYSTEM_FILE})  # fmt: skip
    model = Manifest(Descriptor.for_bytes(mt.MODEL_CONFIG, b"{}"), (big,))
    assert text_layers(model) == []


def test_search_needs_every_word_and_respects_visibility() -> None:
    rows = [
        Row(name, "latest", None, 0.0, 1, Summary("mdl", 1, arch, "7B", quant))
        for name, arch, quant in (
            ("team/chat", "llama", "Q4_K_M"),
            ("team/code", "qwen2", "Q8_0"),
            ("lab/chat", "llama", "Q8_0"),
        )
    ]
    indexed = [(row.haystack, row) for row in rows]
    everyone = lambda name: True  # noqa: E731
    assert [r.name for r in search(indexed, "chat q8_0", everyone, 0, 50)[0]] == ["lab/chat"]
    assert [r.name for r in search(indexed, "LLAMA", everyone, 0, 50)[0]] == [
        "team/chat",
        "lab/chat",
    ]
    page, total = search(indexed, "", lambda name: name.startswith("team/"), 1, 1)
    assert ([r.name for r in page], total) == (["team/code"], 2)


def test_ollama_layers_get_their_file_names() -> None:
    model, _ = mdl_model()
    data, ollama = to_ollama(model, CONFIG)
    assert ollama.config.media_type == OLLAMA_CONFIG
    assert all(x.media_type.startswith(OLLAMA) for x in ollama.layers)
    shown = card(ollama, data, {}, [])
    assert [x["file"] for x in shown["layers"]] == [
        "model.gguf",
        "template",
        "system.txt",
        "LICENSE",
    ]
    _, docker = to_docker(model, CONFIG)
    assert docker.config.media_type == DOCKER_CONFIG_V02
