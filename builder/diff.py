"""``mdl diff A B``: what differs between two stored models, as ``kit diff`` compares kits.

Layers are matched by file path (``model.gguf``, ``adapters/…``, ``LICENSE.2``…): a path only in B
is added, only in A removed, in both with other content changed. Beside the layers: the config
fields, each parameter, the template and the system prompt (with a line diff), and the manifest
annotations. Two models are identical when their manifests are the same bytes.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from mdl.builder.kinds import kind_of
from mdl.spec import mediatypes as mt
from mdl.spec.descriptor import Descriptor
from mdl.spec.parameters import parse_params_json
from mdl.store.models import StoredModel

_CONFIG_FIELDS = (
    "architecture",
    "param_size",
    "quantization",
    "precision",
    "context_length",
    "name",
    "version",
    "licenses",
    "created_at",
)


@dataclass(frozen=True)
class Layer:
    filepath: str
    kind: str
    digest: str
    size: int

    @classmethod
    def of(cls, filepath: str, desc: Descriptor) -> Layer:
        return cls(filepath, kind_of(filepath), str(desc.digest), desc.size)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "filepath": self.filepath,
            "digest": self.digest,
            "size": self.size,
        }


@dataclass(frozen=True)
class Change:
    """A value in A and in B (None where one lacks it)."""

    a: Any
    b: Any

    def to_json(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b}


@dataclass
class Diff:
    a: str
    b: str
    identical: bool
    added: list[Layer] = field(default_factory=list)
    removed: list[Layer] = field(default_factory=list)
    changed: list[tuple[Layer, Layer]] = field(default_factory=list)
    config: dict[str, Change] = field(default_factory=dict)
    parameters: dict[str, Change] = field(default_factory=dict)
    texts: dict[str, Change] = field(default_factory=dict)
    """``template`` and ``system`` when they differ."""
    annotations: dict[str, Change] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "identical": self.identical,
            "layers": {
                "added": [la.to_json() for la in self.added],
                "removed": [la.to_json() for la in self.removed],
                "changed": [
                    {
                        "kind": a.kind,
                        "filepath": a.filepath,
                        "a": {"digest": a.digest, "size": a.size},
                        "b": {"digest": b.digest, "size": b.size},
                    }
                    for a, b in self.changed
                ],
            },
            "config": {k: c.to_json() for k, c in self.config.items()},
            "parameters": {k: c.to_json() for k, c in self.parameters.items()},
            **{k: c.to_json() for k, c in self.texts.items()},
            "annotations": {k: c.to_json() for k, c in self.annotations.items()},
        }


def diff_models(a: StoredModel, b: StoredModel, names: tuple[str, str] = ("A", "B")) -> Diff:
    """``names`` label the two sides (the references given)."""
    report = Diff(
        f"{names[0]} ({a.descriptor.digest})",
        f"{names[1]} ({b.descriptor.digest})",
        a.descriptor.digest == b.descriptor.digest,
    )
    files_a, files_b = a.files.files, b.files.files
    for filepath, desc in files_b.items():
        if filepath not in files_a:
            report.added.append(Layer.of(filepath, desc))
        elif files_a[filepath].digest != desc.digest:
            report.changed.append((Layer.of(filepath, files_a[filepath]), Layer.of(filepath, desc)))
    report.removed = [Layer.of(p, d) for p, d in files_a.items() if p not in files_b]
    report.config = _changes(
        {k: getattr(a.config, k) for k in _CONFIG_FIELDS},
        {k: getattr(b.config, k) for k in _CONFIG_FIELDS},
    )
    report.parameters = _changes(_params(a), _params(b))
    for name, filepath in (("template", mt.TEMPLATE_FILE), ("system", mt.SYSTEM_FILE)):
        before, after = a.text(filepath), b.text(filepath)
        if before != after:
            report.texts[name] = Change(before, after)
    report.annotations = _changes(dict(a.manifest.annotations), dict(b.manifest.annotations))
    return report


def diff_text(report: Diff) -> list[str]:
    """The report as text: ``+``/``-``/``~`` per layer, then the other differences."""
    if report.identical:
        return [f"{report.a} and {report.b} are identical"]
    lines = [f"--- {report.a}", f"+++ {report.b}"]
    lines += [f"+ {la.kind:<10}{la.filepath}  {_short(la)}" for la in report.added]
    lines += [f"- {la.kind:<10}{la.filepath}  {_short(la)}" for la in report.removed]
    lines += [f"~ {a.kind:<10}{a.filepath}  {_short(a)} -> {_short(b)}" for a, b in report.changed]
    for title, changes in (
        ("config", report.config),
        ("parameter", report.parameters),
        ("annotation", report.annotations),
    ):
        lines += [f"{title} {k}: {_show(c.a)} -> {_show(c.b)}" for k, c in changes.items()]
    for name, change in report.texts.items():
        lines.append(f"{name}:")
        lines += [
            f"  {line}"
            for line in difflib.unified_diff(
                (change.a or "").splitlines(),
                (change.b or "").splitlines(),
                "a",
                "b",
                lineterm="",
            )
        ]
    return lines


def _changes(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Change]:
    keys = list(a) + [k for k in b if k not in a]
    return {k: Change(a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k)}


def _params(model: StoredModel) -> dict[str, Any]:
    text = model.text(mt.PARAMS_FILE)
    return dict(parse_params_json(text.encode())) if text else {}


def _short(layer: Layer) -> str:
    return f"{layer.digest[:19]} ({layer.size} bytes)"


def _show(value: Any) -> str:
    return "(none)" if value is None else repr(value) if isinstance(value, str) else str(value)
