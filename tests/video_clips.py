"""Tiny clips and a colour model for the video tests.

Clips are written with PyAV. :class:`ColourModel` predicts, at every pixel, the class of the
dominant RGB channel (0 red, 1 green, 2 blue), so the labels of a clip are known exactly from
what was drawn, at every scale (its attention is a constant 0.5).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hmsa_core.labels import generic_label_set
from hmsa_core.models.base import MultiScaleSegmenter, ScaleOutput
from hmsa_core.video_io import VideoWriter

RED, GREEN, BLUE = 0, 1, 2


class ColourModel(MultiScaleSegmenter):
    """Three classes: the dominant channel of each pixel (exact, no learnt weights)."""

    arch = "colour-test"
    min_input_side = 1
    tile_alignment = 1

    def __init__(self) -> None:
        super().__init__(generic_label_set(3, "colours"))
        self.unused = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> ScaleOutput:
        """Returns logits ``(B, 3, h, w)`` = 20 x the RGB channels, attention 0.5 everywhere."""
        mean = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, 3, 1, 1)
        rgb = x * std + mean
        attention = torch.full_like(rgb[:, :1], 0.5)
        return ScaleOutput(logits=20.0 * rgb, attention=attention)


def labels_image(labels: np.ndarray, texture: np.ndarray | None = None) -> np.ndarray:
    """Returns ``(H, W, 3)`` uint8: each pixel's class channel lit (at ``texture`` brightness,
    default 220), the other channels at 20."""
    h, w = labels.shape
    bright = np.full((h, w), 220.0) if texture is None else texture
    rgb = np.full((h, w, 3), 20.0)
    for c in range(3):
        rgb[..., c] = np.where(labels == c, bright, 20.0)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def write_clip(path: Path, frames: list[np.ndarray], times: list[float] | None = None) -> Path:
    """Writes ``frames`` to an H.264 MP4 at 10 fps (or at ``times``); returns ``path``."""
    with VideoWriter(path, fps=10.0) as writer:
        for i, rgb in enumerate(frames):
            writer.write(rgb, None if times is None else times[i])
    return path


def smooth_texture(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """Returns ``(H, W)`` brightness in [120, 250] varying smoothly (so optical flow finds it)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    noise = gaussian_filter(rng.random(shape), 3.0, mode="wrap")
    noise = (noise - noise.min()) / (np.ptp(noise) + 1e-9)
    return 120.0 + 130.0 * noise


def rotate_tkhd(path: Path, degrees: int) -> None:
    """Rewrites the display matrix of the first ``tkhd`` box of an MP4 in place so players
    rotate the video by ``degrees`` (90, 180 or 270) clockwise."""
    data = bytearray(path.read_bytes())
    at = data.index(b"tkhd")
    version = data[at + 4]
    offset = at + 4 + (52 if version == 1 else 40)
    one, zero = 0x10000, 0
    matrices = {
        90: (zero, one, zero, -one, zero, zero),
        180: (-one, zero, zero, zero, -one, zero),
        270: (zero, -one, zero, one, zero, zero),
    }
    a, b, u, c, d, v = matrices[degrees]
    data[offset : offset + 36] = struct.pack(">9i", a, b, u, c, d, v, 0, 0, 0x40000000)
    path.write_bytes(bytes(data))


def write_audio_only(path: Path) -> Path:
    """Writes a 0.2 s AAC tone in an MP4 with no video stream; returns ``path``."""
    import av

    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=16000)
        t = np.arange(3200) / 16000
        tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
