"""One runner factory over several backends, chosen by ``LoadSpec.backend``."""

from __future__ import annotations

from collections.abc import Mapping

from mdl.runtime.errors import LoadFailed
from mdl.runtime.runner import LoadSpec, ModelRunner, RunnerFactory


def by_backend(factories: Mapping[str, RunnerFactory]) -> RunnerFactory:
    async def load(spec: LoadSpec) -> ModelRunner:
        factory = factories.get(spec.backend)
        if factory is None:
            raise LoadFailed(f"model {spec.name}: this server has no {spec.backend} backend")
        return await factory(spec)

    return load
