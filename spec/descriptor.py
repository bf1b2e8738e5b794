"""OCI content descriptors: what names a blob (media type, digest, size) plus its annotations."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mdl.spec.digest import Digest
from mdl.spec.errors import InvalidReference, MdlError

_OPTIONAL_FIELDS = ("artifactType", "urls", "platform", "data")


class InvalidDescriptor(MdlError):
    exit_code = 2


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Fields mdl does not interpret (artifactType, platform, urls, data), kept for round trips."""

    @classmethod
    def for_bytes(
        cls, media_type: str, data: bytes, annotations: Mapping[str, str] | None = None
    ) -> Descriptor:
        return cls(media_type, Digest.of(data), len(data), dict(annotations or {}))

    @classmethod
    def from_json(cls, obj: Any) -> Descriptor:
        if not isinstance(obj, dict):
            raise InvalidDescriptor("descriptor is not a JSON object")
        media_type, digest, size = obj.get("mediaType"), obj.get("digest"), obj.get("size")
        if not isinstance(media_type, str) or not media_type:
            raise InvalidDescriptor("descriptor has no mediaType")
        if not isinstance(digest, str):
            raise InvalidDescriptor("descriptor has no digest")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidDescriptor(f"descriptor {digest} has no valid size")
        annotations = obj.get("annotations") or {}
        if not isinstance(annotations, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
        ):
            raise InvalidDescriptor(f"descriptor {digest}: annotations must map strings to strings")
        try:
            parsed = Digest.parse(digest)
        except InvalidReference as exc:
            raise InvalidDescriptor(f"descriptor: {exc}") from exc
        extra = {key: obj[key] for key in _OPTIONAL_FIELDS if key in obj}
        return cls(media_type, parsed, size, annotations, extra)

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": str(self.digest),
            "size": self.size,
        }
        obj.update(self.extra)
        if self.annotations:
            obj["annotations"] = dict(self.annotations)
        return obj

    def with_annotations(self, annotations: Mapping[str, str]) -> Descriptor:
        return Descriptor(self.media_type, self.digest, self.size, dict(annotations), self.extra)
