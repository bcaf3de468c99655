"""SynthScapes: a deterministic generator of street-like scenes labelled with Cityscapes trainIds.

Each scene is a street canyon seen in perspective by a camera 1.6 m above the ground: a road
between two sidewalks, optional grass strips, facade planes on both sides made of building,
wall, tree-row and gap segments, a building closing the street far away, sky, and objects
(poles 1-4 px wide with traffic signs, people, cars) drawn far to near so nearer ones occlude.

It is built to have the multi-scale trade-off hierarchical attention resolves:

* look-alike large regions: road and sidewalk share one texture and colour, told apart only by
  kerbs, lane dashes and cars that can be far away; building and wall facades share one
  texture and palette (a building has windows every few metres and rises high, a wall is low
  with sky or trees above it); vegetation and terrain share one green texture (trees stand in
  the facade plane, terrain lies flat on the ground). Deciding such pixels needs wide context:
  a low input scale.
* thin and small things: poles 1-4 px wide, small signs, distant people, that a low input scale
  blurs away: a high input scale.

Every object also gets an instance id and keeps its camera distance (``sample.instances``,
``sample.object_distance``), for the size and distance analysis of :mod:`analysis.where_scales`.
The street and camera live in :mod:`hmsa_core.data.synthscapes_scene`, the object painters in
:mod:`hmsa_core.data.synthscapes_draw`.

Everything is vectorised numpy; a 512 x 1024 scene takes a few tens of milliseconds.
``python -m hmsa_core.data.synthscapes --write-samples assets/samples`` writes sample PNGs.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from hmsa_core.data.sample import SampleView, SegmentationSample
from hmsa_core.data.synthscapes_draw import (
    Instances,
    _box,
    _draw_car,
    _draw_person,
    _draw_pole,
    _objects,
    _paint,
)
from hmsa_core.data.synthscapes_scene import (
    BUILDING,
    CAMERA_HEIGHT,
    CAR,
    CLASSES,
    PERSON,
    POLE,
    ROAD,
    SIDEWALK,
    SIGN,
    SKY,
    TERRAIN,
    TEXELS_PER_METRE,
    VEGETATION,
    WALL,
    _layout,
    _noise_texture,
    _project,
    _render_background,
    _sample,
    _Street,
)

__all__ = [
    "BUILDING", "CAMERA_HEIGHT", "CAR", "CLASSES", "PERSON", "POLE", "ROAD", "SIDEWALK", "SIGN",
    "SKY", "SPLITS", "TERRAIN", "TEXELS_PER_METRE", "VAL_OFFSET", "VEGETATION", "WALL",
    "Instances", "SynthScapes", "_Street", "_box", "_draw_car", "_draw_person", "_draw_pole",
    "_layout", "_noise_texture", "_objects", "_paint", "_project", "_render_background",
    "_sample", "generate_scene", "main", "write_samples",
]  # fmt: skip

#: Offset of val indices: a val scene ``i`` is generated from index ``VAL_OFFSET + i``.
VAL_OFFSET = 10**6
SPLITS = ("train", "val")


def generate_scene(
    index: int, seed: int = 0, size: tuple[int, int] = (512, 1024), split: str = "train"
) -> SegmentationSample:
    """Returns scene ``index`` as a :class:`SegmentationSample` (same arguments, same scene).

    Args:
        index: scene number (any non-negative int; val scenes use ``VAL_OFFSET + i``).
        seed: a dataset seed mixed with the index.
        size: ``(H, W)`` of the image.
        split: only names the sample (``synthscapes/<split>/<index>``).

    Returns:
        image ``(H, W, 3)`` uint8, mask ``(H, W)`` int64 Cityscapes trainIds, instances
        ``(H, W)`` int32 (one id per object, 0 for the background) and each object's camera
        distance in metres (``object_distance``, by instance id).

    Raises:
        ValueError: negative index or a size under 16 x 16.
    """
    if index < 0:
        raise ValueError(f"scene index must be >= 0, got {index}")
    h, w = int(size[0]), int(size[1])
    if h < 16 or w < 16:
        raise ValueError(f"scene size must be at least 16 x 16, got {h} x {w}")
    rng = np.random.default_rng([int(seed), int(index), 0x5C3E])
    street = _layout(rng, (h, w))
    img, mask = _render_background(street, rng, (h, w))
    instances = Instances(np.zeros((h, w), dtype=np.int32))
    painters = {"pole": _draw_pole, "person": _draw_person, "car": _draw_car}
    for z, kind, x in _objects(street, rng):
        painters[kind](img, mask, street, rng, x, z, instances)
    # Lighting: a smooth gradient across the image, a global exposure, sensor noise.
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * (u / w - 0.5) + np.sin(angle) * (v / h - 0.5)
    light = rng.uniform(0.75, 1.15) * (1 + rng.uniform(0.1, 0.35) * ramp)
    img = img * light[..., None] + rng.normal(0, 2.5, (h, w, 1)).astype(np.float32)
    image = np.clip(img, 0, 255).astype(np.uint8)
    return SegmentationSample(
        image=image,
        mask=mask,
        name=f"synthscapes/{split}/{index}",
        instances=instances.map,
        object_distance=instances.distance,
    )


class SynthScapes(SampleView):
    """A split of SynthScapes: ``length`` scenes generated on demand (deterministic).

    Train scene ``i`` is index ``i``; val scene ``i`` is index ``VAL_OFFSET + i``, so the splits
    never share a scene while ``length <= VAL_OFFSET``.
    """

    def __init__(
        self,
        split: str = "val",
        length: int = 100,
        size: tuple[int, int] = (512, 1024),
        seed: int = 0,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        if not 0 < length <= VAL_OFFSET:
            raise ValueError(f"length must be in 1..{VAL_OFFSET}, got {length}")
        self.split = split
        self.length = int(length)
        self.size = (int(size[0]), int(size[1]))
        self.seed = int(seed)

    def index_of(self, i: int) -> int:
        """Returns the generator index of this split's ``i``-th scene."""
        return i + (VAL_OFFSET if self.split == "val" else 0)

    def __len__(self) -> int:
        return self.length

    def _item(self, i: int) -> SegmentationSample:
        """Returns val/train scene ``i`` of this split (see :class:`SampleView` for indexing)."""
        index = self.index_of(i)
        sample = generate_scene(index, self.seed, self.size, split=self.split)
        return replace(sample, name=f"synthscapes/{self.split}/{i}")

    def __iter__(self) -> Iterator[SegmentationSample]:
        for i in range(self.length):
            yield self[i]


def write_samples(
    out_dir: str | Path,
    count: int = 8,
    size: tuple[int, int] = (512, 1024),
    seed: int = 0,
    colors: int = 64,
) -> list[Path]:
    """Writes the first ``count`` val scenes as ``<stem>.png`` + palette ``<stem>_mask.png``.

    The image is stored with an adaptive palette of ``colors`` colours (0: full RGB) so that a
    512 x 1024 sample stays under 300 KB; the mask holds the exact trainIds with the Cityscapes
    palette. Returns the image paths written.
    """
    from PIL import Image

    from hmsa_core.labels import CITYSCAPES

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for i, sample in enumerate(SynthScapes("val", count, size, seed)):
        stem = f"synthscapes_val_{i:03d}"
        image = Image.fromarray(sample.image)
        if colors:
            image = image.quantize(
                colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
            )
        image.save(out / f"{stem}.png", optimize=True)
        mask = Image.fromarray(sample.mask.astype(np.uint8), mode="P")
        mask.putpalette(CITYSCAPES.flat_palette())
        mask.save(out / f"{stem}_mask.png", optimize=True)
        written.append(out / f"{stem}.png")
    return written


def _size(text: str) -> tuple[int, int]:
    h, w = (int(v) for v in text.lower().split("x"))
    return h, w


def main(argv: list[str] | None = None) -> None:
    """CLI: ``--write-samples DIR [--count N] [--size HxW] [--colors K]``."""
    parser = argparse.ArgumentParser(description="SynthScapes generator")
    parser.add_argument("--write-samples", type=Path, required=True, help="output folder")
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=_size, default=(512, 1024), help="HxW")
    parser.add_argument("--colors", type=int, default=64, help="palette size, 0 for RGB")
    args = parser.parse_args(argv)
    for path in write_samples(args.write_samples, args.count, args.size, args.seed, args.colors):
        print(path)


if __name__ == "__main__":
    main()
