"""PaddleSeg parameter names to ours: the key-name rules of the MscaleOCRNet conversion."""

from __future__ import annotations

import re
from collections.abc import Callable

_BN_LEAVES = {
    "weight": "weight",
    "bias": "bias",
    "_mean": "running_mean",
    "_variance": "running_var",
}
_BACKBONE_RULES: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], tuple[str, str]]], ...] = (
    (re.compile(r"conv_layer1_([12])"), lambda m: (f"conv{m[1]}", f"bn{m[1]}")),
    (
        re.compile(r"la1\.bb_layer2_(\d+)\.conv([123])"),
        lambda m: (f"layer1.{int(m[1]) - 1}.conv{m[2]}", f"layer1.{int(m[1]) - 1}.bn{m[2]}"),
    ),
    (
        re.compile(r"la1\.bb_layer2_(\d+)\.conv_down"),
        lambda m: (f"layer1.{int(m[1]) - 1}.downsample.0", f"layer1.{int(m[1]) - 1}.downsample.1"),
    ),
    (
        re.compile(r"tr(\d)\.transition_tr\1_layer_(\d+)"),
        lambda m: _transition(int(m[1]), int(m[2])),
    ),
    (
        re.compile(
            r"st(\d)\.stage_st\1_(\d+)\.branches_func\.bb_st\1_\2_branch_layer_(\d+)_(\d+)\.conv([12])"
        ),
        lambda m: _branch(m, "conv"),
    ),
    (
        re.compile(
            r"st(\d)\.stage_st\1_(\d+)\.fuse_func\.residual_st\1_\2_layer_(\d+)_(\d+)(?:_(\d+))?"
        ),
        lambda m: _fuse(m),
    ),
)
_OCR_BLOCK = "ocr.ocr_distri_head.object_context_block"
_HEAD_RULES: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], tuple[str, str]]], ...] = (
    (
        re.compile(r"spatial_ocr\.attention_block\.(f_pixel|f_object)\.([01])"),
        lambda m: (
            f"{_OCR_BLOCK}.{m[1]}.{2 * int(m[2])}",
            f"{_OCR_BLOCK}.{m[1]}.{2 * int(m[2]) + 1}.0",
        ),
    ),
    (
        re.compile(r"spatial_ocr\.attention_block\.(f_down|f_up)"),
        lambda m: (f"{_OCR_BLOCK}.{m[1]}.0", f"{_OCR_BLOCK}.{m[1]}.1.0"),
    ),
    (
        re.compile(r"spatial_ocr\.conv1x1\.0"),
        lambda m: (
            "ocr.ocr_distri_head.conv_bn_dropout.0",
            "ocr.ocr_distri_head.conv_bn_dropout.1.0",
        ),
    ),
    (re.compile(r"conv3x3_ocr"), lambda m: ("ocr.conv3x3_ocr.0", "ocr.conv3x3_ocr.1.0")),
    (re.compile(r"aux_head\.0"), lambda m: ("ocr.aux_head.0", "ocr.aux_head.1.0")),
)
_ATTN_RULES: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], tuple[str, str]]], ...] = (
    (re.compile(r"([01])"), lambda m: (f"scale_attn.conv{m[1]}", f"scale_attn.bn{m[1]}")),
)
#: Plain (un-normalised) layers: PaddleSeg module -> our module.
_PLAIN_MODULES = {
    "ocrnet.head.cls_head": "ocr.cls_head",
    "ocrnet.head.aux_head.1": "ocr.aux_head.2",
    "scale_attn.atten_head.2": "scale_attn.conv2",
}
_GROUPS = (
    ("ocrnet.backbone.", "backbone.", _BACKBONE_RULES),
    ("ocrnet.head.", "", _HEAD_RULES),
    ("scale_attn.atten_head.", "", _ATTN_RULES),
)


def _transition(stage: int, layer: int) -> tuple[str, str]:
    # transition<t> follows a stage with t branches: layers 1..t change an existing branch's
    # width (Sequential conv, bn); layer t+1 starts a new branch (Sequential(Sequential(conv, bn))).
    base = f"transition{stage}.{layer - 1}"
    if layer <= stage:
        return f"{base}.0", f"{base}.1"
    return f"{base}.0.0", f"{base}.0.1"


def _branch(m: re.Match[str], _: str) -> tuple[str, str]:
    stage, module, branch, block, conv = (int(m[i]) for i in range(1, 6))
    base = f"stage{stage}.{module - 1}.branches.{branch - 1}.{block - 1}"
    return f"{base}.conv{conv}", f"{base}.bn{conv}"


def _fuse(m: re.Match[str]) -> tuple[str, str]:
    stage, module, target, source = (int(m[i]) for i in range(1, 5))
    base = f"stage{stage}.{module - 1}.fuse_layers.{target - 1}.{source - 1}"
    if m[5] is not None:  # a step of a stride-2 down-sampling chain
        base += f".{int(m[5]) - 1}"
    return f"{base}.0", f"{base}.1"


def _conv_bn_modules(module: str) -> tuple[str, str] | None:
    for prefix, ours, rules in _GROUPS:
        if not module.startswith(prefix):
            continue
        rest = module[len(prefix) :]
        for pattern, target in rules:
            match = pattern.fullmatch(rest)
            if match:
                conv, bn = target(match)
                return ours + conv, ours + bn
    return None


def paddle_key_to_ours(key: str) -> str | None:
    """Returns our ``hrnet48_ocr_mscale`` state-dict key for a PaddleSeg ``MscaleOCRNet`` key,
    or ``None`` when the key belongs to no layer of that architecture."""
    for kind in ("._conv.", "._batch_norm."):
        if kind in key:
            module, leaf = key.rsplit(kind, 1)
            modules = _conv_bn_modules(module)
            if modules is None:
                return None
            if kind == "._conv." and leaf in ("weight", "bias"):
                return f"{modules[0]}.{leaf}"
            if kind == "._batch_norm." and leaf in _BN_LEAVES:
                return f"{modules[1]}.{_BN_LEAVES[leaf]}"
            return None
    module, _, leaf = key.rpartition(".")
    if module in _PLAIN_MODULES and leaf in ("weight", "bias"):
        return f"{_PLAIN_MODULES[module]}.{leaf}"
    return None
