"""Input preparation: any accepted image form to the model's normalised ``(1, 3, H, W)`` tensor."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hmsa_core.images import ImageLike, load_rgb, rgb_to_uint8
from hmsa_core.limits import DEFAULT_LIMITS, InputLimits
from hmsa_core.models.base import MultiScaleSegmenter


@dataclass
class PreparedInput:
    """An image ready for the model.

    Attributes:
        tensor: ``(1, 3, H, W)`` float32, normalised with the model's mean and std.
        rgb: ``(H, W, 3)`` uint8 RGB for display.
    """

    tensor: torch.Tensor
    rgb: np.ndarray

    @property
    def size(self) -> tuple[int, int]:
        """Returns ``(H, W)``."""
        return int(self.tensor.shape[-2]), int(self.tensor.shape[-1])


def prepare_input(
    image: ImageLike, model: MultiScaleSegmenter, limits: InputLimits = DEFAULT_LIMITS
) -> PreparedInput:
    """Returns the :class:`PreparedInput` of any accepted image form.

    A ``torch.Tensor`` ``(3, H, W)`` or ``(1, 3, H, W)`` is taken as already normalised and
    stays on its device (a GPU tensor is not copied to the CPU and back; only the uint8 RGB
    for display comes to the CPU); any other form (path, bytes, PIL image, numpy array) is
    read as RGB and normalised with the model's mean and std.

    Raises:
        ValueError: unreadable, oversized, wrongly shaped or non-finite input.
    """
    if isinstance(image, torch.Tensor):
        x = image.detach()
        if x.dim() == 3:
            x = x.unsqueeze(0)
        if x.dim() != 4 or x.shape[:2] != (1, 3):
            raise ValueError(
                f"a tensor image must be a normalised (3, H, W) or (1, 3, H, W); got {tuple(image.shape)}"
            )
        if not x.is_floating_point():
            raise ValueError(f"a tensor image must be floating point, got {x.dtype}")
        h, w = x.shape[-2:]
        if h * w > limits.max_pixels:
            raise ValueError(f"image is too large: {w} x {h} pixels (limit {limits.max_pixels:,})")
        x = x.to(torch.float32)
        if not bool(torch.isfinite(x).all()):
            raise ValueError("image tensor holds NaN or infinite values")
        mean = torch.tensor(model.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(model.std, device=x.device).view(1, 3, 1, 1)
        # rgb_to_uint8's rounding, done where the tensor is: only uint8 crosses to the CPU
        rgb = ((x * std + mean).clamp(0, 1) * 255.0 + 0.5).to(torch.uint8)
        rgb_np = rgb[0].permute(1, 2, 0).contiguous().cpu().numpy()
        return PreparedInput(tensor=x.contiguous(), rgb=rgb_np)
    rgb = load_rgb(image, limits)
    tensor = torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).contiguous()
    return PreparedInput(tensor=model.normalize(tensor), rgb=rgb_to_uint8(rgb))
