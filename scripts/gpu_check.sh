#!/usr/bin/env bash
# The GPU checks of the official model, as run on a lent GPU machine (see README "Performance"):
# the golden test on CUDA (float32, TF32 off: precision="fp32" is passed explicitly), then
# `python -m analysis.bench gpu` at 1024 x 2048 with (0.5, 1, 2): fp32, eager bf16 before and
# after BatchNorm folding, tiled, CUDA graphs, streams, attention gating by each criterion
# (bound, attention, confidence; eager and with graphs) and torch.compile side by side in one
# run, each row the whole `infer` call with the recipe weights, a profile of the eager bf16
# cascade, and last the path `auto` on CUDA would take by analysis.bench.gpu.decide_auto (the
# fastest with eager's argmax and no long first call). Writes its logs, the command first, to
# ${OUT:-results/gpu}/. Needs PyTorch with CUDA, numpy, safetensors, tifffile, tqdm, pillow,
# hypothesis and pytest; nothing of the apps. About 6 minutes on an H200.
# Target (issues 12, 22): (0.5, 1, 2) at 1024 x 2048 in at most 0.10 s on an H100 or H200.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-results/gpu}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$out/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$out/gpu.txt"
HMSA_TEST_DEVICE=cuda timeout "${GOLDEN_TIMEOUT:-150}" python3 -m pytest -p no:cacheprovider -q \
  tests/test_official_golden.py 2>&1 | tee "$out/golden_cuda.txt"
timeout "${BENCH_TIMEOUT:-420}" python3 -m analysis.bench gpu --size 1024x2048 --scales 0.5,1,2 \
  --repeats 10 --checkpoint recipe --gates 0.02 0.3 --gate-by bound attention confidence \
  --profile "$@" 2>&1 | tee "$out/bench_gpu.txt"
