#!/usr/bin/env bash
# The GPU checks of the official model, as run on a lent GPU machine (see README "Performance"):
# the golden test on CUDA (float32, TF32 off) and the 1024 x 2048 benchmark under bf16 autocast.
# Writes its logs to ${OUT:-gpu_logs}/. Needs PyTorch with CUDA, safetensors, tifffile, tqdm,
# pillow and pytest; nothing of the apps.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu_logs}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$out/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$out/gpu.txt"
HMSA_TEST_DEVICE=cuda python3 -m pytest -p no:cacheprovider -q tests/test_official_golden.py 2>&1 | tee "$out/golden_cuda.txt"
python3 -m analysis.bench official --size 1024x2048 --repeats 5 --device cuda 2>&1 | tee "$out/bench_official_1024x2048.txt"
