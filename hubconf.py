"""torch.hub entries of HMSA Explorer: ready models for ``hmsa_core.infer``.

    model = torch.hub.load("<owner>/<repo>", "hmsa_lite")          # from GitHub
    model = torch.hub.load(".", "hmsa_lite", source="local")       # from a clone
    result = hmsa_core.infer("street.png", (0.5, 1.0, 2.0), model=model)

No torchvision is needed. ``cityscapes`` downloads NVIDIA's released checkpoint on first use
(see ``hmsa download``); the other two are bundled in the repository.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hmsa_core.models.base import MultiScaleSegmenter

dependencies = ["torch", "numpy", "PIL", "safetensors", "skimage", "tifffile", "httpx"]


def hmsa_lite(device: str | None = None) -> MultiScaleSegmenter:
    """HMSA on the compact lite trunk, trained on SynthScapes (19 Cityscapes classes).

    Returns the eval-mode model (about 103k parameters) to pass to ``hmsa_core.infer(image,
    scales, model=model)``; any cascade works, e.g. (0.25, 0.5, 1, 2). Trained on synthetic
    street-like scenes: for real photos use the ``cityscapes`` entry.

    Args:
        device: "cpu" or "cuda" (default: CUDA when available).
    """
    import hmsa_core

    return hmsa_core.load_model("hmsa-lite", device)


def explicit_lite(device: str | None = None) -> MultiScaleSegmenter:
    """Explicit scale attention (Chen et al. 2016) on the same lite trunk, trained on SynthScapes
    for the fixed cascade (0.5, 1, 2) only.

    Returns the eval-mode model; merge with ``hmsa_core.infer(image, (0.5, 1.0, 2.0),
    model=model, method="explicit")``. Any other cascade is refused (that is the baseline's
    limitation HMSA removes).

    Args:
        device: "cpu" or "cuda" (default: CUDA when available).
    """
    import hmsa_core

    return hmsa_core.load_model("explicit-lite", device)


def cityscapes(device: str | None = None) -> MultiScaleSegmenter:
    """HRNetV2-W48 + OCR + HMSA trained on Cityscapes (19 classes; 86.89 val mIoU at (0.5, 1, 2)
    as published by PaddleSeg, whose port of NVIDIA's model this is): the real-photo model.

    Downloads the checkpoint once into the HMSA cache (about 289 MB; ``hmsa download
    cityscapes`` does the same; ``HMSA_OFFLINE=1`` forbids it and raises with what to do) and
    returns the eval-mode model for ``hmsa_core.infer(image, (0.5, 1.0, 2.0), model=model)``.

    Args:
        device: "cpu" or "cuda" (default: CUDA when available).
    """
    import hmsa_core

    return hmsa_core.load_model("cityscapes", device)
