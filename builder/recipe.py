"""The effective model a Modelfile describes: its FROM base (file or stored model) with the
Modelfile's instructions applied, as Ollama applies them, and every input checked.

Inheritance from a stored model: TEMPLATE, SYSTEM, DRAFT, REQUIRES, RENDERER and PARSER replace;
LICENSE and ADAPTER append; PARAMETER merges with the new names winning (a new ``stop`` list
replaces the old one); any MESSAGE replaces all inherited messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from mdl.builder.sources import GGUFSource, resolve_base, resolve_gguf
from mdl.spec import mediatypes as mt
from mdl.spec.digest import Digest
from mdl.spec.errors import ModelfileError
from mdl.spec.gguf import read_gguf_file
from mdl.spec.modelfile import (
    Instruction,
    Modelfile,
    ModelParts,
    format_modelfile,
    parse_modelfile,
)
from mdl.spec.modelpack import ANNOTATION_TEMPLATE_FORMAT, license_filepath, template_format
from mdl.spec.parameters import ParamValue, go_json, params_json, parse_params_json
from mdl.store.models import StoredModel
from mdl.store.shards import shard_filepath, weight_shards
from mdl.store.store import Store


@dataclass(frozen=True)
class Recipe:
    path: str
    weights: GGUFSource
    adapters: tuple[GGUFSource, ...] = ()
    projector: GGUFSource | None = None
    draft: GGUFSource | None = None
    template: str | None = None
    template_format: str = "go"
    system: str | None = None
    params: tuple[tuple[str, ParamValue], ...] = ()
    messages: tuple[tuple[str, str], ...] = ()
    licenses: tuple[str, ...] = ()
    extras: dict[str, str] = field(default_factory=dict)
    """REQUIRES, RENDERER and PARSER: kept in the Modelfile layer."""
    base: Digest | None = None
    """The manifest of the stored model FROM named, when it named one."""

    def params_json(self) -> bytes | None:
        """The params layer, or None when there are no parameters (Ollama writes none then)."""
        return params_json(self.params) if self.params else None

    def messages_json(self) -> bytes | None:
        """Ollama's messages layer: a JSON list of {"role", "content"}, in that field order."""
        if not self.messages:
            return None
        items = ",".join(
            f'{{"role":{_go_string(role)},"content":{_go_string(content)}}}'
            for role, content in self.messages
        )
        return f"[{items}]\n".encode()

    def shard_files(self) -> list[tuple[str, GGUFSource]]:
        """A split model's shards after the first, with the file path each is stored as."""
        count = len(self.weights.shards) + 1
        return [(shard_filepath(no, count), s) for no, s in enumerate(self.weights.shards, 2)]

    def license_files(self) -> list[tuple[str, str]]:
        return [(license_filepath(i), text) for i, text in enumerate(self.licenses)]

    def normalised_modelfile(
        self, weights: Digest, adapters: list[Digest], draft: Digest | None
    ) -> str:
        """This model as a Modelfile with local paths replaced by blob digests.

        It builds the same model again in this store; a template that came from the weights'
        own GGUF metadata is left out, since the weights bring it back.
        """
        own = self.template is not None and self.template != self.weights.info.chat_template
        parts = ModelParts(
            str(weights),
            adapters=[str(d) for d in adapters],
            draft=str(draft) if draft else None,
            template=self.template if own else None,
            system=self.system,
            parameters=[(k, param_text(v)) for k, v in self.params],
            messages=list(self.messages),
            licenses=self.licenses,
            extras=sorted(self.extras.items()),
        )
        return format_modelfile(parts.modelfile(self.path))


def recipe_for(store: Store, modelfile: Modelfile, context: Path) -> Recipe:
    path = modelfile.path
    base_line = modelfile.from_.line
    base = resolve_base(store, modelfile.from_.value, context=context, path=path, line=base_line)
    if isinstance(base, StoredModel):
        recipe = replace(_inherit(base, path), base=base.descriptor.digest)
    else:
        recipe = Recipe(path, base, projector=base.projector)
    if recipe.weights.info.is_adapter:
        raise ModelfileError(path, base_line, "FROM names a LoRA adapter, not a model")
    return _check_template(_apply(store, recipe, modelfile, context))


def _apply(store: Store, recipe: Recipe, mf: Modelfile, context: Path) -> Recipe:
    changes: dict[str, object] = {}
    if mf.template is not None:
        changes["template"] = mf.template
        changes["template_format"] = template_format(mf.template)
    if mf.system is not None:
        changes["system"] = mf.system
    if mf.parameters:
        new_names = {name for name, _ in mf.parameters}
        kept = tuple((k, v) for k, v in recipe.params if k not in new_names)
        changes["params"] = kept + tuple(mf.parameters)
    if mf.messages:
        changes["messages"] = tuple(mf.messages)
    changes["licenses"] = recipe.licenses + tuple(mf.licenses)
    adapters = list(recipe.adapters)
    for instruction in mf.adapters:
        adapter = _resolve_adapter(store, recipe, instruction, mf.path, context)
        adapters.append(adapter)
    changes["adapters"] = tuple(adapters)
    if mf.draft is not None:
        draft = resolve_gguf(
            store, mf.draft.value, context=context, path=mf.path, line=mf.draft.line, what="DRAFT"
        )
        if draft.info.is_adapter:
            raise ModelfileError(mf.path, mf.draft.line, "DRAFT names a LoRA adapter, not a model")
        changes["draft"] = draft
    extras = dict(recipe.extras)
    for command in ("requires", "renderer", "parser"):
        given = mf.last(command)
        if given is not None:
            extras[command] = given.value
    changes["extras"] = extras
    return replace(recipe, **changes)  # type: ignore[arg-type]


def _resolve_adapter(
    store: Store, recipe: Recipe, instruction: Instruction, path: str, context: Path
) -> GGUFSource:
    adapter = resolve_gguf(
        store, instruction.value, context=context, path=path, line=instruction.line, what="ADAPTER"
    )
    if not adapter.info.is_adapter:
        raise ModelfileError(
            path, instruction.line, f"ADAPTER {instruction.value}: not a LoRA adapter GGUF"
        )
    base_arch, arch = recipe.weights.info.architecture, adapter.info.architecture
    if arch != base_arch:
        raise ModelfileError(
            path,
            instruction.line,
            f"ADAPTER {instruction.value}: architecture {arch!r} does not match the model's "
            f"{base_arch!r}",
        )
    return adapter


def _check_template(recipe: Recipe) -> Recipe:
    if recipe.template is None and recipe.weights.info.chat_template:
        return replace(recipe, template=recipe.weights.info.chat_template, template_format="jinja")
    return recipe


def _inherit(model: StoredModel, path: str) -> Recipe:
    """A stored model's parts as the starting point of a new build."""

    def source(filepath: str) -> GGUFSource | None:
        desc = model.files.get(filepath)
        if desc is None:
            return None
        blob = model.store.blob_path(desc.digest)
        return GGUFSource(blob, read_gguf_file(blob), 0, desc.digest)

    stored = model.files.weights
    weights = source(stored.annotations[mt.ANNOTATION_FILEPATH]) if stored else None
    if weights is None:
        raise ModelfileError(path, 1, f"FROM {model.descriptor.digest}: model has no weights")
    shards = weight_shards(model.files)[1:]
    if shards:
        rest = []
        for desc in shards:
            blob = model.store.blob_path(desc.digest)
            rest.append(GGUFSource(blob, read_gguf_file(blob), 0, desc.digest))
        tensors = tuple(t for s in (weights, *rest) for t in s.info.tensors)
        weights = replace(weights, info=replace(weights.info, tensors=tensors), shards=tuple(rest))
    adapters = [source(filepath) for filepath, _ in model.files.adapters]
    template_desc = model.files.get(mt.TEMPLATE_FILE)
    params = model.text(mt.PARAMS_FILE)
    messages = model.json(mt.MESSAGES_FILE) or []
    return Recipe(
        path=path,
        weights=weights,
        adapters=tuple(a for a in adapters if a is not None),
        projector=source(mt.PROJECTOR_FILE),
        draft=source(mt.DRAFT_FILE),
        template=model.text(mt.TEMPLATE_FILE),
        template_format=(template_desc.annotations.get(ANNOTATION_TEMPLATE_FORMAT, "go"))
        if template_desc
        else "go",
        system=model.text(mt.SYSTEM_FILE),
        params=_param_pairs(parse_params_json(params.encode())) if params else (),
        messages=tuple((m["role"], m["content"]) for m in messages),
        licenses=tuple(model.store.read_blob(d).decode() for d in model.files.licenses),
        extras=_stored_extras(model),
    )


def _stored_extras(model: StoredModel) -> dict[str, str]:
    text = model.text(mt.MODELFILE_FILE)
    if text is None:
        return {}
    stored = parse_modelfile(text, f"{model.descriptor.digest}/Modelfile")
    return {
        command: instruction.value
        for command in ("requires", "renderer", "parser")
        if (instruction := stored.last(command)) is not None
    }


def _param_pairs(params: Mapping[str, object]) -> tuple[tuple[str, ParamValue], ...]:
    pairs: list[tuple[str, ParamValue]] = []
    for name, value in params.items():
        for item in value if isinstance(value, list) else [value]:
            assert isinstance(item, bool | int | float | str)
            pairs.append((name, item))
    return tuple(pairs)


def param_text(value: ParamValue) -> str:
    return value if isinstance(value, str) else go_json(value).decode().rstrip("\n")


def _go_string(text: str) -> str:
    return go_json(text).decode().rstrip("\n")
