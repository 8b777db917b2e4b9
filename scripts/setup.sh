#!/usr/bin/env bash
# Sets up ./.venv with everything human_body_prior needs; `--test` adds the test-only packages.
# Installs the Mesa EGL libraries for headless rendering when they are missing (needs root or sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! ldconfig -p 2>/dev/null | grep -q "libEGL.so.1" || ! ls /usr/lib/*/dri/swrast_dri.so >/dev/null 2>&1; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && sudo_cmd="sudo"
  if [ "$(id -u)" -eq 0 ] || [ -n "$sudo_cmd" ]; then
    $sudo_cmd apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq libegl1 libgl1-mesa-dri >/dev/null
  else
    echo "warning: rendering needs Debian's libegl1 and libgl1-mesa-dri; install them as root" >&2
  fi
fi

python_bin=$(command -v python3.11 || command -v python3)
[ -x .venv/bin/python ] || "$python_bin" -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q torch==2.13.0          # first and pinned: the CPU wheel, not GBs of CUDA
.venv/bin/pip install -q -e .
if [ "${1:-}" = "--test" ]; then
  .venv/bin/pip install -q -r requirements-test.txt
  # body-models, a peer that must read the shipped files: without its dependencies (they would pull
  # huggingface-hub and friends); importing its numpy/torch models needs only these
  .venv/bin/pip install -q --no-deps body-models==0.26.2 jaxtyping==0.3.11 nanomanifold==0.8.0 wadler_lindig==0.1.8
fi
