#!/usr/bin/env bash
# The GPU checks in one call, for a session that is lent a device machine (its python3 holds torch with
# CUDA; nothing can be fetched there). Prepare here, once per checkout:
#   printf '/.whl/\n/.device_data/\n' >> .git/info/exclude
#   .venv/bin/pip wheel -q --no-deps -w .whl configer==1.3.1 smplx==0.1.28
#   mkdir -p .device_data && cp -r D/test .device_data/test   # prepare_open_mocap's held-out split
# then run(command="bash scripts/device_check.sh", carry=[".whl", ".device_data"], timeout_s=540).
# Under $OUT: device.txt, cuda_tests.log, PERFORMANCE_cuda.md (forward and forward + backward at batch 1
# and 512 against smplx), ik_cuda.json (the README's IK example at batch 256 on held-out frames).
# It also runs on a machine without CUDA, where it only checks its own plumbing.
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD"
OUT="${OUT:-$PWD/device_out}"
mkdir -p "$OUT"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="$PWD:/tmp/site"
fi
python3 -c "import torch; print('torch', torch.__version__, '| cuda:', torch.cuda.is_available() and torch.cuda.get_device_name(0))" \
    | tee "$OUT/device.txt"
CUDA=$(python3 -c "import torch; print(int(torch.cuda.is_available()))")

# 1. tests that run on CUDA when there is one (test_body_model_vposer.py runs all of its tests there)
{ timeout 240 python3 -m pytest -q -p no:cacheprovider -k "cuda or CUDA" tests/test_body_model.py tests/test_experiment.py
  timeout 240 python3 -m pytest -q -p no:cacheprovider tests/test_body_model_vposer.py; } 2>&1 | tee "$OUT/cuda_tests.log" | tail -4

# 2. BodyModel on CUDA against smplx (the forward batch 512 column)
if [ "$CUDA" = 1 ]; then
    timeout 200 python3 benchmarks/bench_body_model.py --no-cpu --batches 1 512 --skip-vposer --skip-memory \
        --out "$OUT/PERFORMANCE_cuda.md" 2>&1 | tail -6
fi

# 3. the README's IK example (LBFGS max_iter 50, BodyModel joints) on held-out frames
if [ -d .device_data/test ]; then
    if [ "$CUDA" = 1 ]; then DEV=cuda; FRAMES=1024; else DEV=cpu; FRAMES=16; fi
    timeout 200 python3 benchmarks/bench_ik.py --test .device_data/test --frames "$FRAMES" --batch 256 --source mesh \
        --settings readme --timing-frames 3 --device "$DEV" --out "$OUT/ik_$DEV.json" 2>&1 | tail -4
fi
