#!/usr/bin/env bash
# mypy --strict and the import-linter layering contract over the mdl.* packages.
# Both tools need a real mdl/ directory; the repository keeps the folders at the top and installs
# them as mdl.<folder>, so link them into a temporary tree first.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${MDL_VENV:-.venv}
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
mkdir "$tree/mdl"
for pkg in spec store builder client registry runtime cli; do ln -s "$PWD/$pkg" "$tree/mdl/$pkg"; done
(cd "$tree" && MYPYPATH="$tree" "$OLDPWD/$venv/bin/mypy" --config-file "$OLDPWD/pyproject.toml" \
    -p mdl.spec -p mdl.store -p mdl.builder -p mdl.client -p mdl.registry -p mdl.runtime -p mdl.cli)
PYTHONPATH="$tree" "$venv/bin/lint-imports"
