"""Streaming outputs of a video run: frame images, the per-frame ``.npz`` and the JSON summary.

* :func:`overlay_frame`: the input with the prediction blended in (the explorer's overlay).
* :func:`deciding_frame`: each pixel coloured by the scale with the largest effective weight,
  on the explorer's weight-map colour scale (:data:`analysis.figures.ATTENTION_SCALE`, smallest
  scale first), see :func:`scale_colours`.
* :class:`FrameArchive`: one ``.npz`` written frame by frame (a zip of ``.npy`` members), so
  memory does not grow with the clip.
* :func:`write_json`: the summary, written under a temporary name and renamed.

Every file is written as ``<stem>.partial<suffix>`` and renamed when complete; ``abort``
removes it, so a cancelled run never leaves a half-written file under a finished name.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from analysis.figures import ATTENTION_SCALE, blend, heatmap_rgb
from hmsa_core.inference import InferenceResult
from hmsa_core.video_io import partial_path

#: Keys of :class:`FrameArchive` per frame ``i`` (``{i:05d}``) and once per clip.
FRAME_KEYS = ("pred", "image", "scale_pred", "attention", "has_attention", "weights", "cost")
CLIP_KEYS = ("scales", "frame_index", "time", "class_names", "method", "thumb_size")


def scale_colours(n: int, colorscale: str = ATTENTION_SCALE) -> np.ndarray:
    """Returns ``(n, 3)`` uint8 colours of ``n`` ascending scales: evenly spaced on the
    weight maps' colour scale (first colour for the smallest scale, last for the largest)."""
    if n < 1:
        raise ValueError("a cascade has at least one scale")
    positions = np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)
    return heatmap_rgb(positions[None, :], 0.0, 1.0, colorscale)[0]


def overlay_frame(result: InferenceResult, opacity: float = 0.5) -> np.ndarray:
    """Returns the ``(H, W, 3)`` uint8 input with the label colours of ``result.pred`` blended
    in at ``opacity``."""
    colour = result.labels.colorize(result.pred.cpu().numpy())
    return blend(result.image, colour, opacity)


def deciding_frame(deciding: np.ndarray, n_scales: int) -> np.ndarray:
    """Returns the ``(H, W, 3)`` uint8 image of a ``(H, W)`` deciding-scale index map, each
    pixel in its scale's :func:`scale_colours` colour."""
    return scale_colours(n_scales)[deciding]


def thumb_size(size: tuple[int, int], side: int) -> tuple[int, int]:
    """Returns ``(h, w)`` of ``size`` ``(H, W)`` with its long side at most ``side``."""
    h, w = size
    f = min(1.0, side / max(h, w))
    return max(1, round(h * f)), max(1, round(w * f))


def _resized(x: torch.Tensor, size: tuple[int, int], mode: str) -> np.ndarray:
    """Returns ``x`` ``(S, h, w)`` resized to ``size`` as numpy."""
    t = x.float()[:, None]
    if mode == "nearest":
        t = F.interpolate(t, size=size, mode="nearest")
    else:
        t = F.interpolate(t, size=size, mode="bilinear", align_corners=False)
    return t[:, 0].cpu().numpy()


def frame_arrays(result: InferenceResult, side: int = 256) -> dict[str, np.ndarray]:
    """Returns one frame's kept arrays (see :class:`FrameArchive`); maps at ``thumb_size``.

    ``pred`` ``(H, W)`` uint8 full size; ``image`` ``(h, w, 3)`` uint8; ``scale_pred``
    ``(S, h, w)`` uint8 (each scale's own prediction: its logits resized, then arg-max); ``attention`` and ``weights``
    ``(S, h, w)`` uint8 holding ``round(255 * value)`` (attention all 0 for a scale without
    it: see ``has_attention`` ``(S,)`` bool); ``cost`` ``(S, 3)`` float32: GFLOPs, seconds,
    computed fraction per scale. Quantising the maps to 8 bits keeps the file small.
    """
    size = thumb_size(result.size, side)
    scales = result.scales
    # each scale's logits resized to the kept size, then arg-max (an arg-max at a 2.0 pass's
    # own size costs 10x more and is thrown away by the resize)
    scale_pred = np.stack(
        [_resized(result.per_scale[s].output.logits[0], size, "bilinear").argmax(0) for s in scales]
    )
    attention = np.zeros((len(scales), *size), dtype=np.float32)
    has_attention = np.zeros(len(scales), dtype=bool)
    for i, s in enumerate(scales):
        a = result.per_scale[s].attention
        if a is not None:
            attention[i] = _resized(a.reshape(1, *a.shape[-2:]), size, "bilinear")[0]
            has_attention[i] = True
    weights = np.zeros((len(scales), *size), dtype=np.float32)
    if result.weights:
        weights[:] = _resized(torch.stack([result.weights[s] for s in scales]), size, "bilinear")
    image = torch.from_numpy(np.ascontiguousarray(result.image)).permute(2, 0, 1).float()
    thumb = _resized(image, size, "bilinear").round().clip(0, 255).astype(np.uint8)
    costs = {c.scale: c for c in result.cost.per_scale}
    cost = np.array(
        [[c.flops / 1e9, c.seconds, c.computed_fraction] for c in (costs[s] for s in scales)],
        dtype=np.float32,
    )
    return {
        "pred": result.pred.to(torch.uint8).cpu().numpy(),
        "image": thumb.transpose(1, 2, 0),
        "scale_pred": scale_pred.astype(np.uint8),
        "attention": quantise(attention),
        "has_attention": has_attention,
        "weights": quantise(weights),
        "cost": cost,
    }


def quantise(x: np.ndarray) -> np.ndarray:
    """Returns ``x`` (values in [0, 1]) as uint8 ``round(255 * x)``, same shape."""
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


class FrameArchive:
    """A ``.npz`` written one frame at a time (members ``<key>_<i:05d>`` per
    :data:`FRAME_KEYS`, then :data:`CLIP_KEYS` on :meth:`close`); readable with ``np.load``."""

    def __init__(self, path: str | os.PathLike, side: int = 256) -> None:
        """Opens ``<stem>.partial.npz`` beside ``path``; ``side`` bounds the kept maps."""
        self.path = Path(path)
        self.side = side
        self.frames = 0
        self._zip = zipfile.ZipFile(
            partial_path(self.path), "w", zipfile.ZIP_DEFLATED, compresslevel=1
        )
        self._times: list[float] = []
        self._indices: list[int] = []

    def _put(self, name: str, array: np.ndarray) -> None:
        with self._zip.open(f"{name}.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array(f, np.ascontiguousarray(array), allow_pickle=False)

    def add(self, result: InferenceResult, frame_index: int, time: float) -> None:
        """Stores one frame's :func:`frame_arrays`."""
        for key, array in frame_arrays(result, self.side).items():
            self._put(f"{key}_{self.frames:05d}", array)
        self._times.append(float(time))
        self._indices.append(int(frame_index))
        self._last = result
        self.frames += 1

    def close(self) -> Path | None:
        """Writes the clip arrays, closes and renames the file; returns its path (``None``
        and nothing left when no frame was added)."""
        if self.frames == 0:
            self.abort()
            return None
        last = self._last
        self._put("scales", np.asarray(last.scales, dtype=np.float64))
        self._put("frame_index", np.asarray(self._indices, dtype=np.int64))
        self._put("time", np.asarray(self._times, dtype=np.float64))
        self._put("class_names", np.asarray(last.labels.names))
        self._put("method", np.asarray(last.method))
        self._put("thumb_size", np.asarray(thumb_size(last.size, self.side), dtype=np.int64))
        self._zip.close()
        os.replace(partial_path(self.path), self.path)
        return self.path

    def abort(self) -> None:
        """Closes and removes the partial file."""
        self._zip.close()
        partial_path(self.path).unlink(missing_ok=True)


def write_json(path: str | os.PathLike, data: dict) -> Path:
    """Writes ``data`` as indented JSON under a temporary name, then renames it; returns the
    path. NaN is not valid JSON: use ``None``."""
    path = Path(path)
    tmp = partial_path(path)
    tmp.write_text(json.dumps(data, indent=2, allow_nan=False), encoding="utf-8")
    os.replace(tmp, path)
    return path


@dataclass
class KeptFrame:
    """One frame as kept in a run's ``.npz`` (see :func:`frame_arrays`), maps as floats.

    Attributes:
        number: position among the processed frames; ``time``: seconds.
        scales: the cascade; ``class_names``: the label names.
        image: ``(h, w, 3)`` uint8 reduced input; ``pred``: ``(H, W)`` merged prediction.
        scale_pred: ``(S, h, w)`` each scale's prediction.
        attention: ``(S, h, w)`` float32 in [0, 1], ``None`` rows for scales without one.
        weights: ``(S, h, w)`` float32 effective weights.
        cost: ``(S, 3)`` GFLOPs, seconds, computed fraction per scale.
    """

    number: int
    time: float
    scales: tuple[float, ...]
    class_names: tuple[str, ...]
    image: np.ndarray
    pred: np.ndarray
    scale_pred: np.ndarray
    attention: list[np.ndarray | None]
    weights: np.ndarray
    cost: np.ndarray


def read_kept_frame(path: str | os.PathLike, number: int) -> KeptFrame:
    """Returns processed frame ``number`` of a finished run's ``.npz`` (no forward pass).

    Raises:
        ValueError: no such frame in the file.
    """
    with np.load(path, allow_pickle=False) as npz:
        key = f"pred_{number:05d}"
        if key not in npz.files:
            raise ValueError(f"frame {number} is not in {Path(path).name}")
        has = npz[f"has_attention_{number:05d}"]
        attention = npz[f"attention_{number:05d}"].astype(np.float32) / 255.0
        return KeptFrame(
            number=number,
            time=float(npz["time"][number]),
            scales=tuple(float(s) for s in npz["scales"]),
            class_names=tuple(str(n) for n in npz["class_names"]),
            image=npz[f"image_{number:05d}"],
            pred=npz[key],
            scale_pred=npz[f"scale_pred_{number:05d}"],
            attention=[a if h else None for a, h in zip(attention, has)],
            weights=npz[f"weights_{number:05d}"].astype(np.float32) / 255.0,
            cost=npz[f"cost_{number:05d}"],
        )
