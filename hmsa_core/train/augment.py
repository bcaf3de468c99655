"""Training augmentation: random scale, crop, flip and colour jitter, in torch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from hmsa_core.labels import IGNORE_INDEX


@dataclass(frozen=True)
class AugmentParams:
    """Augmentation settings.

    Attributes:
        crop: ``(h, w)`` output size.
        scale_min, scale_max: random rescaling range (log-uniform).
        jitter: brightness/contrast/saturation strength.
        class_uniform: probability that a crop is centred near a pixel of a class drawn
            uniformly among the classes of the scene (class-uniform sampling, as in the official
            training code), so rare thin classes are seen often enough.
    """

    crop: tuple[int, int]
    scale_min: float = 0.5
    scale_max: float = 2.0
    jitter: float = 0.25
    class_uniform: float = 0.0


def pick_anchor(mask: torch.Tensor, rng: np.random.Generator) -> tuple[int, int]:
    """Returns ``(y, x)`` of a random pixel of a class drawn uniformly among ``mask``'s classes."""
    m = mask.numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    classes = [c for c in np.unique(m).tolist() if c != IGNORE_INDEX]
    ys, xs = np.nonzero(m == classes[int(rng.integers(0, len(classes)))])
    k = int(rng.integers(0, len(ys)))
    return int(ys[k]), int(xs[k])


def random_crop(
    image: torch.Tensor, mask: torch.Tensor, params: AugmentParams, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns an augmented ``((3, h, w) float RGB in [0, 1], (h, w) int64 mask)``.

    ``image`` is ``(H, W, 3)`` uint8 and ``mask`` ``(H, W)`` uint8/int64. The scene is rescaled
    by a random factor, a random crop of ``params.crop`` taken (padded with ignore where the
    rescaled scene is smaller), flipped with probability 1/2 and colour-jittered. Only the
    cropped window is resampled, so large factors cost no more than small ones.
    """
    ch, cw = params.crop
    big_h, big_w = image.shape[:2]
    scale = float(np.exp(rng.uniform(np.log(params.scale_min), np.log(params.scale_max))))
    # Source window (in scene pixels) that maps onto the crop.
    win_h, win_w = min(big_h, round(ch / scale)), min(big_w, round(cw / scale))
    if params.class_uniform > 0 and rng.random() < params.class_uniform:
        ay, ax = pick_anchor(mask, rng)  # the window holds the anchor pixel, anywhere in it
        y0 = int(rng.integers(max(0, ay - win_h + 1), min(ay, big_h - win_h) + 1))
        x0 = int(rng.integers(max(0, ax - win_w + 1), min(ax, big_w - win_w) + 1))
    else:
        y0 = int(rng.integers(0, big_h - win_h + 1))
        x0 = int(rng.integers(0, big_w - win_w + 1))
    out_h, out_w = min(ch, round(win_h * scale)), min(cw, round(win_w * scale))
    img = image[y0 : y0 + win_h, x0 : x0 + win_w].permute(2, 0, 1).float().div(255).unsqueeze(0)
    img = F.interpolate(img, size=(out_h, out_w), mode="bilinear", align_corners=False)[0]
    msk = mask[y0 : y0 + win_h, x0 : x0 + win_w].long()[None, None].float()
    msk = F.interpolate(msk, size=(out_h, out_w), mode="nearest")[0, 0].long()
    if (out_h, out_w) != (ch, cw):
        canvas = torch.zeros((3, ch, cw))
        canvas_mask = torch.full((ch, cw), IGNORE_INDEX, dtype=torch.long)
        canvas[:, :out_h, :out_w] = img
        canvas_mask[:out_h, :out_w] = msk
        img, msk = canvas, canvas_mask
    if rng.random() < 0.5:
        img, msk = img.flip(-1), msk.flip(-1)
    return color_jitter(img, params.jitter, rng), msk


def color_jitter(img: torch.Tensor, strength: float, rng: np.random.Generator) -> torch.Tensor:
    """Returns ``(3, h, w)`` RGB in [0, 1] with random brightness, contrast and saturation."""
    if strength <= 0:
        return img
    b, c, s = rng.uniform(1 - strength, 1 + strength, 3)
    img = img * b
    mean = img.mean()
    img = (img - mean) * c + mean
    grey = img.mean(0, keepdim=True)
    img = (img - grey) * s + grey
    return img.clamp(0, 1)
