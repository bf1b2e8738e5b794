"""The routes table: templates filled in, encoded so a reference can never add a segment."""

from __future__ import annotations

import pytest

from mdl.spec import routes


@pytest.mark.parametrize(
    ("route", "params", "expected"),
    [
        (routes.BASE, {}, "/v2/"),
        (routes.TAGS, {"name": "team/m"}, "/v2/team/m/tags/list"),
        (routes.MANIFEST, {"name": "a/b", "reference": "v1"}, "/v2/a/b/manifests/v1"),
        (routes.BLOB, {"name": "m", "digest": "sha256:ab"}, "/v2/m/blobs/sha256:ab"),
        (routes.MANIFEST, {"name": "m", "reference": "../x?y"}, "/v2/m/manifests/..%2Fx%3Fy"),
        (routes.UPLOAD, {"name": "m", "uuid": "u1"}, "/v2/m/blobs/uploads/u1"),
    ],
)
def test_path_fills_the_template(
    route: routes.Route, params: dict[str, str], expected: str
) -> None:
    assert route.path(**params) == expected


def test_query_is_encoded_after_the_path() -> None:
    path = routes.UPLOADS.path({"mount": "sha256:ab", "from": "x/y z"}, name="m")
    assert path == "/v2/m/blobs/uploads/?mount=sha256:ab&from=x/y+z"


def test_missing_or_extra_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="manifest"):
        routes.MANIFEST.path(name="m")
    with pytest.raises(ValueError, match="base"):
        routes.BASE.path(name="m")


def test_repository_routes_name_every_kind_once() -> None:
    kinds = [route.kind for route in routes.REPOSITORY_ROUTES]
    assert len(kinds) == len(set(kinds)) == 6
    assert all(route.parameters[0] == "name" for route in routes.REPOSITORY_ROUTES)
