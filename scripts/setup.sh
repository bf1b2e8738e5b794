#!/usr/bin/env bash
# Set up everything mdl's demo and tests need, on a fresh Debian machine or again (idempotent):
#   .venv with mdl installed editable with [dev] (llama-cpp-python built once, portable, into a
#   wheel directory that later runs reuse), and the system packages the tests drive (skopeo,
#   distribution, Ceph's RADOS Gateway for the registry's S3 backend).
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
wheels=${MDL_WHEELS:-$HOME/.cache/mdl-wheels}
llama=0.3.36

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Debian packages the tests drive: skopeo, distribution 2.8 (docker-registry), htpasswd, chromium.
# A temporary policy-rc.d keeps docker-registry's packaged service from starting on :5000.
missing=()
command -v skopeo >/dev/null || missing+=(skopeo)
command -v docker-registry >/dev/null || missing+=(docker-registry)
command -v htpasswd >/dev/null || missing+=(apache2-utils)
command -v ceph-mon >/dev/null || missing+=(ceph-mon)
command -v ceph-osd >/dev/null || missing+=(ceph-osd)
command -v radosgw >/dev/null || missing+=(radosgw)
command -v ceph >/dev/null || missing+=(ceph-common)
command -v uuidgen >/dev/null || missing+=(uuid-runtime)
command -v chromium >/dev/null || missing+=(chromium)  # the web pages' browser tests
command -v espeak-ng >/dev/null || missing+=(espeak-ng)  # speaks the speech-to-text tests' WAVs
command -v haproxy >/dev/null || missing+=(haproxy)  # the registry replicas' load balancer
command -v ss >/dev/null || missing+=(iproute2)  # a test reads a stopped worker's socket queue
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]} (Debian packages)"
    made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
        as_root chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
    [ $made_policy = 0 ] || as_root rm -f /usr/sbin/policy-rc.d
fi

[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip

if ! compgen -G "$wheels/llama_cpp_python-$llama-*.whl" >/dev/null; then
    echo "setup: building llama-cpp-python $llama once (portable CPU build, about 5 minutes)"
    mkdir -p "$wheels"
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF" .venv/bin/python -m pip wheel -q \
        --no-cache-dir --no-deps "llama-cpp-python==$llama" -w "$wheels"
fi
.venv/bin/python -m pip install -q --find-links "$wheels" -e '.[dev]'
# An editable install leaves the sources uncompiled; without .pyc files (and with
# PYTHONDONTWRITEBYTECODE set, as in some sandboxes) every command would compile them again.
.venv/bin/python -m compileall -q spec store builder client registry runtime cli >/dev/null
echo "setup: ready ($(.venv/bin/mdl --version 2>/dev/null || echo mdl))"
