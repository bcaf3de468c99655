#!/usr/bin/env bash
# The GPU checks of the official model, as run on a lent GPU machine (see README "Performance"):
# the golden test on CUDA (float32, TF32 off: precision="fp32" is passed explicitly), then
# `python -m analysis.bench gpu` at 1024 x 2048 with (0.5, 1, 2): fp32, eager bf16 before and
# after BatchNorm folding, tiled, CUDA graphs, streams, attention gating and torch.compile side
# by side in one run, and a profile of the eager bf16 cascade. Writes its logs to
# ${OUT:-gpu_logs}/. Needs PyTorch with CUDA, numpy, safetensors, tifffile, tqdm, pillow,
# hypothesis and pytest; nothing of the apps. About 5 minutes on an H200.
# Target (issue 12): (0.5, 1, 2) at 1024 x 2048 in at most 0.10 s on an H200.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu_logs}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$out/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$out/gpu.txt"
HMSA_TEST_DEVICE=cuda timeout "${GOLDEN_TIMEOUT:-150}" python3 -m pytest -p no:cacheprovider -q \
  tests/test_official_golden.py 2>&1 | tee "$out/golden_cuda.txt"
timeout "${BENCH_TIMEOUT:-330}" python3 -m analysis.bench gpu --size 1024x2048 --scales 0.5,1,2 \
  --repeats 10 --checkpoint recipe --gates 0.02 --profile "$@" 2>&1 | tee "$out/bench_gpu.txt"
