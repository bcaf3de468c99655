"""Recipe weights for PaddleSeg's ``MscaleOCRNet`` (fixtures README, second part), as files.

:func:`paddle_recipe_state` regenerates the weights ``paddleseg_mscale_golden.npz`` was made
with from PaddleSeg's key manifest; :func:`recipe_pdparams` writes them once per test session
as a genuine ``.pdparams`` pickle (about 290 MB, under pytest's base temporary folder) so every
test module that needs a full-size file shares one.
"""

from __future__ import annotations

import math
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from hmsa_core.checkpoints.paddle import save_pdparams
from hmsa_core.data.recipe_weights import read_manifest

FIXTURES = Path(__file__).parent / "fixtures"
PADDLE_MANIFEST = FIXTURES / "paddleseg_mscale_ocr_hrnet_w48_nv_cityscapes.json"
PADDLE_GOLDEN = FIXTURES / "paddleseg_mscale_golden.npz"
PADDLE_EXAMPLE = FIXTURES / "paddle_save_example.pdparams"
GAIN = 0.9
#: PaddleSeg keys whose first dimension is the class count.
CLASS_ROWS = ("ocrnet.head.cls_head.", "ocrnet.head.aux_head.1.")


def paddle_recipe_tensor(name: str, shape: list[int], gain: float = GAIN) -> torch.Tensor:
    """Returns the recipe tensor of PaddleSeg key ``name`` (full key, no prefix stripped)."""
    generator = torch.Generator().manual_seed(zlib.crc32(name.encode("utf-8")))
    if name.endswith("._variance"):
        return 1 + 0.2 * torch.rand(shape, generator=generator)
    if name.endswith("._mean"):
        return 0.1 * torch.randn(shape, generator=generator)
    if len(shape) >= 2:
        return torch.randn(shape, generator=generator) * (gain / math.sqrt(math.prod(shape[1:])))
    if name.endswith(".weight"):
        return 1 + 0.1 * torch.randn(shape, generator=generator)
    if name.endswith(".bias"):
        return 0.1 * torch.randn(shape, generator=generator)
    raise ValueError(f"no recipe rule matches {name!r}")


def paddle_manifest(num_classes: int = 19) -> list[tuple[str, list[int]]]:
    """Returns PaddleSeg's ``(key, shape)`` list, with the classifiers resized to ``num_classes``."""
    keys = read_manifest(PADDLE_MANIFEST)
    return [
        (key, [num_classes, *shape[1:]] if key.startswith(CLASS_ROWS) else shape)
        for key, shape in keys
    ]


def paddle_recipe_state(num_classes: int = 19, gain: float = GAIN) -> dict[str, np.ndarray]:
    """Returns the recipe state dict under PaddleSeg's key names, as float32 numpy arrays."""
    return {
        key: paddle_recipe_tensor(key, shape, gain).numpy()
        for key, shape in paddle_manifest(num_classes)
    }


def recipe_pdparams(tmp_path_factory: pytest.TempPathFactory, num_classes: int = 19) -> Path:
    """Returns a genuine ``.pdparams`` pickle of the recipe weights (written once per session)."""
    path = tmp_path_factory.getbasetemp() / "paddle_recipe" / f"recipe_{num_classes}.pdparams"
    if not path.is_file():
        staged = path.with_name(path.name + ".tmp")
        save_pdparams(paddle_recipe_state(num_classes), staged)
        staged.replace(path)
    return path
