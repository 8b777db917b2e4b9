#!/usr/bin/env bash
# Builds the wheel, installs it into a fresh virtual environment (torch pinned first) and runs the main job
# there from outside the checkout: the installed package must find its shipped models and prior by itself.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python_bin=$(command -v python3.11 || command -v python3)
"$python_bin" -m venv "$work/venv"
"$work/venv/bin/pip" install -q --upgrade pip
"$work/venv/bin/pip" install -q torch==2.13.0          # first and pinned: the CPU wheel, not GBs of CUDA
"$work/venv/bin/pip" wheel -q --no-deps -w "$work/dist" "$repo"
"$work/venv/bin/pip" install -q "$work"/dist/human_body_prior-*.whl
cd "$work"
"$work/venv/bin/python" - <<'PY'
import human_body_prior as hbp
folder = hbp.support_data_dir()
assert folder.name == "_support_data" and "site-packages" in str(folder), folder
print("support data:", folder)
print("prior:", hbp.default_vposer_dir())
print("model:", hbp.default_body_model_path("smplx", "neutral"))
PY
PYOPENGL_PLATFORM=egl "$work/venv/bin/python" -m human_body_prior.tutorials.sample_body_pose --out "$work/samples"
test -s "$work/samples/vposer_samples.png"
echo "wheel smoke test passed"
