"""The official HMSA model (HRNetV2-W48 + OCR) as the benchmarks load it, and their size
argument.

Two programs use it: ``python -m analysis.bench official`` (configurations side by side,
:mod:`analysis.bench.official_compare`) and ``python -m analysis.bench official-scales``
(time, FLOPs and memory per scale, :mod:`analysis.bench.official_scales`); so does
``python -m analysis.bench gpu``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from analysis import cli_args
from hmsa_core.models import build
from hmsa_core.models.base import MultiScaleSegmenter
from hmsa_core.models.mscale_ocr import ARCH


def bench_parser(
    program: str, description: str | None, example: str, size: str
) -> argparse.ArgumentParser:
    """Returns the argument parser of ``python -m analysis.bench <program>``: its ``--size``
    (the 1.0 input ``HxW``, default ``size``) and a worked example (``--help`` ends on it)."""
    parser = cli_args.bench_parser(program, description, example)
    parser.add_argument("--size", default=size, help=f"1.0 input size HxW (default {size})")
    return parser


def parse_size(text: str) -> tuple[int, int]:
    """Returns ``(H, W)`` from ``"HxW"``; ``ValueError`` if malformed."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise ValueError(f"size must look like 256x512, got {text!r}") from exc
    if h < 32 or w < 32:
        raise ValueError(f"size {text!r} is too small (at least 32x32)")
    return h, w


#: The golden fixtures (manifest and arrays) the ``recipe`` weights are regenerated from.
FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures"


def recipe_model(device: torch.device) -> MultiScaleSegmenter:
    """Returns the official architecture with the golden fixtures' deterministic recipe
    weights (regenerated from NVIDIA's key manifest with the gain the golden arrays used)."""
    from hmsa_core.data.recipe_weights import read_manifest, recipe_state_dict

    gain = float(np.load(FIXTURES / "nvidia_mscale_golden.npz")["recipe_gain"])
    manifest = read_manifest(FIXTURES / "nvidia_mscale_ocr_hrnetv2_w48_cityscapes.json")
    model = build(ARCH, 19)
    model.load_state_dict(recipe_state_dict(manifest, gain=gain), strict=True)
    return model.to(device).eval()


def load_bench_model(checkpoint: str | None, device: torch.device) -> MultiScaleSegmenter:
    """Returns the eval-mode model: ``"recipe"`` (:func:`recipe_model`), a checkpoint file,
    else randomly initialised."""
    if checkpoint == "recipe":
        return recipe_model(device)
    if checkpoint:
        from hmsa_core.api import load_model

        return load_model(checkpoint, device)
    return build(ARCH, 19).to(device).eval()
