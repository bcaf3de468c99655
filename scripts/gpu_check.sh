#!/usr/bin/env bash
# The GPU checks of the official model, as run on a lent GPU machine (see README "Performance"):
# the golden test on CUDA (float32, TF32 off: precision="fp32" is passed explicitly), the
# 1024 x 2048 per-scale benchmark under bf16 autocast, and eager vs the fast path (CUDA graphs,
# torch.compile, streams) side by side in one run. Writes its logs to ${OUT:-gpu_logs}/.
# Needs PyTorch with CUDA, safetensors, tifffile, tqdm, pillow and pytest; nothing of the apps.
# Target (issue 12): (0.5, 1, 2) at 1024 x 2048 in at most 0.10 s on an H200 (0.211 s eager).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu_logs}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$out/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$out/gpu.txt"
HMSA_TEST_DEVICE=cuda python3 -m pytest -p no:cacheprovider -q tests/test_official_golden.py 2>&1 | tee "$out/golden_cuda.txt"
python3 -m analysis.bench official --per-scale --size 1024x2048 --repeats 5 --device cuda 2>&1 | tee "$out/bench_official_1024x2048.txt"
timeout 900 python3 -m analysis.bench gpu --size 1024x2048 --scales 0.5,1,2 --repeats 10 2>&1 | tee "$out/bench_gpu_eager_vs_fast.txt"
