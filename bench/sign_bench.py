"""``mdl sign`` and ``mdl verify REF --key`` of a large model against ``model_signing sign key``.

Goal (issue 13): signing and verifying a 1 GiB model take under 0.2 s each, because a raw
layer's digest is the file's SHA-256 and no blob is read; OpenSSF's ``model_signing sign key``
over the same files exported to a directory (which hashes every byte) is timed in the same run
for the ratio. Every contender is a whole process, start-up included.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from build_bench import write_gguf
from common import (
    Check,
    Contender,
    FamilyResult,
    MiB,
    Options,
    Timing,
    ratio_check,
    run_interleaved,
    time_subprocess,
    warm_page_cache,
)

NAME = "sign"
LIMIT_S = 0.2
MODEL_SIGNING = Path(sys.executable).with_name("model_signing")


def run(options: Options) -> FamilyResult:
    data = options.workdir / "data"
    data.mkdir()
    gguf = data / "big.gguf"
    write_gguf(gguf, options.size_mib * MiB)
    (data / "Modelfile").write_text("FROM ./big.gguf\n")
    env = {**os.environ, "MDL_HOME": str(options.workdir / "home")}
    env.pop("MDL_KEY_PASSPHRASE", None)
    mdl = str(options.mdl)
    time_subprocess([mdl, "build", "-t", "bench:1"], env=env, cwd=data)
    key = options.workdir / "bench"
    time_subprocess([mdl, "key", "generate", "--out", str(key)], env=env)
    exported = options.workdir / "exported"
    time_subprocess([mdl, "export", "bench:1", str(exported)], env=env)
    size = sum(p.stat().st_size for p in exported.iterdir())

    sign = Timing("mdl sign")
    verify = Timing("mdl verify REF --key")
    reference = Timing("model_signing sign key (exported dir)", size)
    sign_argv = [mdl, "sign", "bench:1", "--key", f"{key}.key"]
    verify_argv = [mdl, "verify", "bench:1", "--key", f"{key}.pub"]
    signature = options.workdir / "model.sig"
    reference_argv = [str(MODEL_SIGNING), "sign", "key", str(exported), "--private_key",
                      f"{key}.key", "--signature", str(signature)]  # fmt: skip
    time_subprocess(sign_argv, env=env)  # so that verify, in whatever order, has a signature
    run_interleaved(
        [
            Contender((sign,), lambda: (time_subprocess(sign_argv, env=env)[0],)),
            Contender((verify,), lambda: (time_subprocess(verify_argv, env=env)[0],)),
            Contender((reference,), lambda: (time_subprocess(reference_argv, env=env)[0],)),
        ],
        options.repeat,
        before_each=lambda: warm_page_cache(exported / "model.gguf"),
    )
    startup = Timing("mdl --version (start-up alone)")
    for _ in range(options.repeat):
        startup.samples.append(time_subprocess([mdl, "--version"], env=env)[0])
    work = _in_process(options.workdir / "home", key)
    checks = (
        Check("mdl sign", sign.median, "s", f"< {LIMIT_S:g} s", sign.median < LIMIT_S),
        Check("mdl verify", verify.median, "s", f"< {LIMIT_S:g} s", verify.median < LIMIT_S),
        Check("mdl start-up (--version)", startup.median, "s", "info", None),
        Check("sign + verify in process", work, "s", "info", None),
        ratio_check("mdl sign / model_signing sign", sign.median / reference.median, None),
    )
    notes = (
        f"{size / MiB:.0f} MiB model (GGUF of random F32 tensors), {options.repeat} rounds, "
        "medians; one untimed warm-up round; order shuffled each round",
        "each contender is a whole process; the exported copy is read into the page cache "
        "before every run, so model_signing hashes from memory",
    )
    timings = (sign, verify, reference, startup)
    return FamilyResult(NAME, "mdl sign / verify", notes, timings, checks)


def _in_process(home: Path, key: Path) -> float:
    """One sign and one verify through the library, without the interpreter's start-up."""
    from mdl.spec import sigstore
    from mdl.spec.reference import Reference
    from mdl.store.models import load_model
    from mdl.store.signatures import sign, verify
    from mdl.store.store import Store

    private = sigstore.load_private_key(Path(f"{key}.key").read_bytes())
    start = time.perf_counter()
    store = Store(home / "store")
    model = load_model(store, Reference.parse("bench:1"))
    sign(store, model, "bench", private)
    verify(store, model, private.public_key())
    return time.perf_counter() - start
