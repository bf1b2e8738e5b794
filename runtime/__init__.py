"""Model serving: Ollama's and OpenAI's APIs over the local store, with llama.cpp in one
worker process per loaded model (see docs/runtime.md)."""
