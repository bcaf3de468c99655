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

Everything is vectorised numpy; a 512 x 1024 scene takes a few tens of milliseconds.
``python -m hmsa_core.data.synthscapes --write-samples assets/samples`` writes sample PNGs.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import overload

import numpy as np

from hmsa_core.data.sample import SegmentationSample

ROAD, SIDEWALK, BUILDING, WALL, POLE, SIGN, VEGETATION, TERRAIN, SKY, PERSON, CAR = (
    0,
    1,
    2,
    3,
    5,
    7,
    8,
    9,
    10,
    11,
    13,
)
#: The trainIds SynthScapes draws.
CLASSES: tuple[int, ...] = (
    ROAD,
    SIDEWALK,
    BUILDING,
    WALL,
    POLE,
    SIGN,
    VEGETATION,
    TERRAIN,
    SKY,
    PERSON,
    CAR,
)
#: Offset of val indices: a val scene ``i`` is generated from index ``VAL_OFFSET + i``.
VAL_OFFSET = 10**6
SPLITS = ("train", "val")
CAMERA_HEIGHT = 1.6  # metres
TEXELS_PER_METRE = 24.0
_TEX_SIZE = 512

_FACADE_COLORS = np.array(
    [
        [150, 138, 120],
        [170, 150, 130],
        [120, 110, 105],
        [160, 120, 95],
        [135, 135, 140],
        [185, 170, 140],
        [140, 100, 85],
        [110, 118, 112],
    ],
    dtype=np.float32,
)
_SEG_BUILDING, _SEG_WALL, _SEG_TREES, _SEG_GAP = 0, 1, 2, 3


@functools.lru_cache(maxsize=4)
def _noise_texture(seed: int) -> np.ndarray:
    """Returns a tileable ``(512, 512)`` float32 1/f noise texture with zero mean, unit std."""
    rng = np.random.default_rng(seed)
    white = rng.standard_normal((_TEX_SIZE, _TEX_SIZE))
    fy = np.fft.fftfreq(_TEX_SIZE)[:, None]
    fx = np.fft.fftfreq(_TEX_SIZE)[None, :]
    radius = np.sqrt(fx**2 + fy**2)
    radius[0, 0] = 1.0
    spectrum = np.fft.fft2(white) / radius**0.9
    spectrum[0, 0] = 0
    tex = np.real(np.fft.ifft2(spectrum))
    tex = (tex - tex.mean()) / tex.std()
    return tex.astype(np.float32)


def _sample(
    tex: np.ndarray, a: np.ndarray, b: np.ndarray, offset: tuple[float, float]
) -> np.ndarray:
    """Returns ``tex`` sampled (nearest, wrapping) at world coordinates ``(a, b)`` in metres."""
    ia = ((a * TEXELS_PER_METRE + offset[0]).astype(np.int64)) % _TEX_SIZE
    ib = ((b * TEXELS_PER_METRE + offset[1]).astype(np.int64)) % _TEX_SIZE
    return tex[ia, ib]


@dataclass(frozen=True)
class _Street:
    """The random layout of one scene (metres, pixels for the camera)."""

    focal: float
    horizon: float
    centre: float
    road: float  # half width of the road
    sidewalk: float  # sidewalk width
    terrain: tuple[float, float]  # grass strip width, left and right
    z_end: float  # distance of the building closing the street
    end_height: float
    end_color: np.ndarray
    bounds: tuple[np.ndarray, np.ndarray]  # per side: segment start distances (ascending)
    kinds: tuple[np.ndarray, np.ndarray]  # per side: segment kinds
    heights: tuple[np.ndarray, np.ndarray]  # per side: segment heights
    colors: tuple[np.ndarray, np.ndarray]  # per side: (n, 3) facade colours

    def facade_x(self, side: int) -> float:
        """Returns |X| of the facade plane on ``side`` (0 left, 1 right)."""
        return self.road + self.sidewalk + self.terrain[side]


def _layout(rng: np.random.Generator, size: tuple[int, int]) -> _Street:
    h, w = size
    bounds, kinds, heights, colors = [], [], [], []
    for _ in range(2):
        starts = [0.0]
        while starts[-1] < 160:
            starts.append(starts[-1] + rng.uniform(6, 22))
        n = len(starts)
        kind = rng.choice(
            [_SEG_BUILDING, _SEG_WALL, _SEG_TREES, _SEG_GAP], size=n, p=[0.42, 0.3, 0.2, 0.08]
        )
        height = np.where(
            kind == _SEG_BUILDING,
            rng.uniform(8, 26, n),
            np.where(
                kind == _SEG_WALL,
                rng.uniform(1.8, 3.2, n),
                np.where(kind == _SEG_TREES, rng.uniform(4, 9, n), 0.0),
            ),
        )
        color = _FACADE_COLORS[rng.integers(0, len(_FACADE_COLORS), n)]
        color = color * rng.uniform(0.85, 1.15, (n, 1))
        bounds.append(np.asarray(starts))
        kinds.append(kind)
        heights.append(height)
        colors.append(color)
    return _Street(
        focal=0.55 * w * rng.uniform(0.9, 1.1),
        horizon=h * rng.uniform(0.36, 0.46),
        centre=w * rng.uniform(0.42, 0.58),
        road=rng.uniform(3.5, 6.5),
        sidewalk=rng.uniform(2.0, 4.0),
        terrain=tuple(float(t) if rng.random() < 0.55 else 0.0 for t in rng.uniform(1.5, 4.0, 2)),
        z_end=rng.uniform(70, 150),
        end_height=rng.uniform(10, 30),
        end_color=_FACADE_COLORS[rng.integers(0, len(_FACADE_COLORS))],
        bounds=(bounds[0], bounds[1]),
        kinds=(kinds[0], kinds[1]),
        heights=(heights[0], heights[1]),
        colors=(colors[0], colors[1]),
    )


def _render_background(
    street: _Street, rng: np.random.Generator, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``(image (H, W, 3) float32 in 0-255, mask (H, W) int64)`` of the empty street.

    Works on flat pixel subsets: every pixel is resolved once (side facade, ground, the
    building closing the street, else sky) and coloured only where it was resolved.
    """
    h, w = size
    tex = _noise_texture(0)
    tex2 = _noise_texture(1)
    f = street.focal
    n = h * w
    mask = np.full(n, SKY, dtype=np.int64)
    img = np.zeros((n, 3), dtype=np.float32)
    resolved = np.zeros(n, dtype=bool)
    dv_all = np.repeat(np.arange(h, dtype=np.float32) + 0.5 - street.horizon, w)
    du_all = np.tile(np.arange(w, dtype=np.float32) + 0.5 - street.centre, h)
    # Colours shared by look-alike pairs: one pavement, one green, per scene.
    pavement = rng.uniform(95, 140) * np.array([1.0, 1.0, 1.03]) * rng.uniform(0.95, 1.05, 3)
    green = np.array([70, 105, 45]) * rng.uniform(0.8, 1.2) * rng.uniform(0.9, 1.1, 3)
    offs = [tuple(rng.uniform(0, _TEX_SIZE, 2)) for _ in range(4)]

    # Side facades: the ray through (u, v) meets the plane |X| = B at depth z.
    for side, sign in ((0, -1.0), (1, 1.0)):
        bx = street.facade_x(side)
        idx = np.flatnonzero(du_all * sign > 0.5)
        du, dv = du_all[idx], dv_all[idx]
        z = f * bx / np.abs(du)
        y = CAMERA_HEIGHT - dv * z / f
        keep = (z < street.z_end) & (y >= 0)
        idx, z, y = idx[keep], z[keep], y[keep]
        seg = np.clip(
            np.searchsorted(street.bounds[side], z, side="right") - 1,
            0,
            len(street.bounds[side]) - 1,
        )
        kind = street.kinds[side][seg]
        top = street.heights[side][seg]
        # Tree rows get a bumpy crown line; every other wall has trees behind it.
        bump = 0.8 * np.sin(z * 1.7 + side) + 0.5 * np.sin(z * 4.3 + 2 * side)
        tree_top = np.where(
            kind == _SEG_TREES,
            top + bump,
            np.where((kind == _SEG_WALL) & (seg % 2 == 0), top + 3.0 + bump, 0),
        )
        solid = (kind == _SEG_BUILDING) | (kind == _SEG_WALL)
        facade = solid & (y <= top)
        trees = ~facade & (y <= tree_top)
        shade = 0.82 if side == 0 else 1.0
        # Facade texture: shared by buildings and walls.
        fi, fz, fy, fseg, fkind, ftop = (a[facade] for a in (idx, z, y, seg, kind, top))
        local = fz - street.bounds[side][fseg]
        fac_tex = _sample(tex, fy, fz, offs[0])
        col = street.colors[side][fseg] * ((1 + 0.16 * fac_tex) * shade)[:, None]
        # Windows: only on buildings, every few metres, above the ground floor.
        win_z = np.mod(local, 3.2)
        win_y = np.mod(fy, 3.0)
        window = (
            (fkind == _SEG_BUILDING)
            & (fy > 3.0)
            & (fy < ftop - 1.0)
            & (win_z > 1.0)
            & (win_z < 2.4)
            & (win_y > 0.9)
            & (win_y < 2.3)
            & (local > 1.0)
        )
        col[window] = np.array([55, 65, 80]) * (1 + 0.2 * fac_tex[window])[:, None]
        # Segment edges (a darker vertical seam) and a cap line on walls.
        edge = (local < 0.18) | ((fkind == _SEG_WALL) & (fy > ftop - 0.15))
        col[edge] *= 0.7
        img[fi] = col
        mask[fi] = np.where(fkind == _SEG_WALL, WALL, BUILDING)
        ti, tz, ty = idx[trees], z[trees], y[trees]
        veg_tex = _sample(tex2, ty, tz, offs[1])
        img[ti] = green * ((1 + 0.3 * veg_tex) * shade)[:, None]
        mask[ti] = VEGETATION
        resolved[fi] = True
        resolved[ti] = True

    # Ground plane: depth from the row, X from the column.
    idx = np.flatnonzero((dv_all > 0.5) & ~resolved)
    zg = f * CAMERA_HEIGHT / dv_all[idx]
    keep = zg < street.z_end
    idx, zg = idx[keep], zg[keep]
    xg = du_all[idx] * zg / f
    ax = np.abs(xg)
    edge_x = street.road + street.sidewalk
    cls = np.where(ax < street.road, ROAD, np.where(ax < edge_x, SIDEWALK, TERRAIN))
    pav_tex = _sample(tex, xg, zg, offs[2])
    col = pavement * (1 + 0.16 * pav_tex)[:, None]
    kerb = (ax > street.road) & (ax < street.road + 0.2)
    col[kerb] *= 1.35
    dash = (ax < 0.08) & (np.mod(zg, 9.0) < 3.0)
    col[dash] = np.array([215.0, 215.0, 205.0])
    grass = cls == TERRAIN
    col[grass] = green * (1 + 0.3 * _sample(tex2, xg[grass], zg[grass], offs[3]))[:, None]
    img[idx] = col
    mask[idx] = cls
    resolved[idx] = True

    # The building closing the street.
    bx = max(street.facade_x(0), street.facade_x(1))
    idx = np.flatnonzero(~resolved)
    ye = CAMERA_HEIGHT - dv_all[idx] * street.z_end / f
    xe = du_all[idx] * street.z_end / f
    end = (np.abs(xe) < bx) & (ye >= 0) & (ye <= street.end_height)
    ei = idx[end]
    end_tex = _sample(tex, ye[end], xe[end], offs[0])
    img[ei] = street.end_color * (0.9 * (1 + 0.16 * end_tex))[:, None]
    mask[ei] = BUILDING
    resolved[ei] = True

    # Sky: a vertical gradient with soft clouds.
    idx = np.flatnonzero(~resolved)
    sky_top = np.array([70, 120, 190]) * rng.uniform(0.85, 1.1)
    sky_low = np.array([185, 205, 225]) * rng.uniform(0.9, 1.05)
    v = dv_all[idx] + street.horizon
    t = np.clip(v / max(street.horizon, 1.0), 0, 1)[:, None]
    cloud = np.clip(_sample(tex2, v / 60.0, (du_all[idx] + street.centre) / 60.0, offs[1]), 0, None)
    img[idx] = sky_top * (1 - t) + sky_low * t + 25 * cloud[:, None]
    return img.reshape(h, w, 3), mask.reshape(h, w)


def _project(street: _Street, x: float, y: float, z: float) -> tuple[float, float]:
    """Returns the image ``(u, v)`` of world point ``(x, y, z)`` (y up from the ground)."""
    return street.centre + street.focal * x / z, street.horizon + street.focal * (
        CAMERA_HEIGHT - y
    ) / z


def _box(
    size: tuple[int, int], u0: float, u1: float, v0: float, v1: float
) -> tuple[slice, slice] | None:
    h, w = size
    a, b = max(int(np.floor(v0)), 0), min(int(np.ceil(v1)), h)
    c, d = max(int(np.floor(u0)), 0), min(int(np.ceil(u1)), w)
    if a >= b or c >= d:
        return None
    return slice(a, b), slice(c, d)


def _paint(
    img: np.ndarray,
    mask: np.ndarray,
    box: tuple[slice, slice] | None,
    color: np.ndarray,
    cls: int,
    where: np.ndarray | None = None,
) -> None:
    if box is None:
        return
    if where is None:
        img[box] = color
        mask[box] = cls
    else:
        img[box][where] = color
        mask[box][where] = cls


def _draw_pole(
    img: np.ndarray, mask: np.ndarray, street: _Street, rng: np.random.Generator, x: float, z: float
) -> None:
    """A pole 1-4 px wide, sometimes carrying a traffic sign."""
    size = mask.shape
    u, v_foot = _project(street, x, 0.0, z)
    height = rng.uniform(3.5, 7.0)
    _, v_top = _project(street, x, height, z)
    width = int(np.clip(round(street.focal * 0.12 / z), 1, 4))
    grey = rng.uniform(110, 175)
    left = float(np.floor(u - width / 2))  # whole pixels: the pole is exactly `width` wide
    box = _box(size, left, left + width, v_top, v_foot)
    _paint(img, mask, box, np.array([grey, grey, grey * 1.02]), POLE)
    if rng.random() < 0.6:
        half = street.focal * rng.uniform(0.3, 0.45) / z
        _, v_sign = _project(street, x, height - 0.4, z)
        box = _box(size, u - half, u + half, v_sign - half, v_sign + half)
        if box is None:
            return
        color = [
            np.array([220, 200, 20]),
            np.array([200, 40, 40]),
            np.array([40, 70, 190]),
            np.array([235, 235, 235]),
        ][rng.integers(0, 4)]
        hh, ww = box[0].stop - box[0].start, box[1].stop - box[1].start
        yy, xx = np.mgrid[0:hh, 0:ww]
        shape = rng.integers(0, 3)
        if shape == 0:  # disc
            cy, cx = (v_sign - box[0].start) - 0.5, (u - box[1].start) - 0.5
            where = (yy - cy) ** 2 + (xx - cx) ** 2 <= half**2
        elif shape == 1:  # triangle
            where = np.abs(xx - (u - box[1].start)) <= (yy + 1) * 0.6
        else:
            where = np.ones((hh, ww), dtype=bool)
        _paint(img, mask, box, color * rng.uniform(0.85, 1.1), SIGN, where)


def _draw_person(
    img: np.ndarray, mask: np.ndarray, street: _Street, rng: np.random.Generator, x: float, z: float
) -> None:
    """A person: a head disc over a torso and legs, in random clothes."""
    size = mask.shape
    height = rng.uniform(1.55, 1.9)
    u, v_foot = _project(street, x, 0.0, z)
    _, v_head = _project(street, x, height, z)
    px = street.focal / z  # pixels per metre
    half = max(0.22 * px, 0.6)
    shirt = rng.uniform(20, 230, 3)
    trousers = rng.uniform(20, 120, 3)
    skin = np.array([200, 160, 130]) * rng.uniform(0.6, 1.1)
    _paint(
        img,
        mask,
        _box(size, u - half, u + half, v_head + 0.25 * px, v_foot - 0.85 * px),
        shirt,
        PERSON,
    )
    _paint(
        img,
        mask,
        _box(size, u - half * 0.8, u + half * 0.8, v_foot - 0.85 * px, v_foot),
        trousers,
        PERSON,
    )
    r = max(0.12 * px, 0.6)
    box = _box(size, u - r, u + r, v_head, v_head + 2 * r)
    if box is not None:
        hh, ww = box[0].stop - box[0].start, box[1].stop - box[1].start
        yy, xx = np.mgrid[0:hh, 0:ww]
        cy, cx = v_head + r - box[0].start - 0.5, u - box[1].start - 0.5
        where = (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2 + 0.5
        _paint(img, mask, box, skin, PERSON, where)


def _draw_car(
    img: np.ndarray, mask: np.ndarray, street: _Street, rng: np.random.Generator, x: float, z: float
) -> None:
    """A car seen from behind: body, a darker window band, wheels and lights."""
    size = mask.shape
    width, height = rng.uniform(1.7, 2.0), rng.uniform(1.4, 1.7)
    u0, v_foot = _project(street, x - width / 2, 0.0, z)
    u1, v_top = _project(street, x + width / 2, height, z)
    body = rng.uniform(20, 230, 3)
    _paint(
        img,
        mask,
        _box(size, u0, u1, v_top + 0.35 * (v_foot - v_top), v_foot - 0.12 * (v_foot - v_top)),
        body,
        CAR,
    )
    _paint(
        img,
        mask,
        _box(
            size,
            u0 + 0.12 * (u1 - u0),
            u1 - 0.12 * (u1 - u0),
            v_top,
            v_top + 0.38 * (v_foot - v_top),
        ),
        body * 0.45 + 20,
        CAR,
    )
    for a, b in ((0.05, 0.25), (0.75, 0.95)):
        _paint(
            img,
            mask,
            _box(
                size,
                u0 + a * (u1 - u0),
                u0 + b * (u1 - u0),
                v_foot - 0.14 * (v_foot - v_top),
                v_foot,
            ),
            np.array([25, 25, 25]),
            CAR,
        )
        _paint(
            img,
            mask,
            _box(
                size,
                u0 + a * (u1 - u0),
                u0 + b * (u1 - u0),
                v_top + 0.45 * (v_foot - v_top),
                v_top + 0.55 * (v_foot - v_top),
            ),
            np.array([200, 30, 30]),
            CAR,
        )


def _objects(street: _Street, rng: np.random.Generator) -> list[tuple[float, str, float]]:
    """Returns ``(z, kind, x)`` of every object in the scene."""
    items: list[tuple[float, str, float]] = []
    for sign in (-1.0, 1.0):
        z = rng.uniform(6, 14)
        while z < street.z_end - 5:  # poles at the kerb
            items.append((z, "pole", sign * (street.road + rng.uniform(0.3, 0.7))))
            z += rng.uniform(9, 25)
        for _ in range(rng.integers(2, 8)):  # people on the sidewalk
            items.append(
                (
                    rng.uniform(7, 70),
                    "person",
                    sign * (street.road + rng.uniform(0.5, street.sidewalk - 0.3)),
                )
            )
    for _ in range(rng.integers(2, 6)):  # cars in lanes or parked
        lane = rng.choice([-0.7, -0.25, 0.25, 0.7]) * street.road * 1.1
        items.append((rng.uniform(8, 80), "car", float(lane)))
    for _ in range(rng.integers(0, 3)):  # people crossing the road, far away
        items.append((rng.uniform(25, 70), "person", rng.uniform(-street.road, street.road)))
    return sorted(items, key=lambda item: -item[0])


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
        image ``(H, W, 3)`` uint8 and mask ``(H, W)`` int64 Cityscapes trainIds.

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
    for z, kind, x in _objects(street, rng):
        if kind == "pole":
            _draw_pole(img, mask, street, rng, x, z)
        elif kind == "person":
            _draw_person(img, mask, street, rng, x, z)
        else:
            _draw_car(img, mask, street, rng, x, z)
    # Lighting: a smooth gradient across the image, a global exposure, sensor noise.
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * (u / w - 0.5) + np.sin(angle) * (v / h - 0.5)
    light = rng.uniform(0.75, 1.15) * (1 + rng.uniform(0.1, 0.35) * ramp)
    img = img * light[..., None] + rng.normal(0, 2.5, (h, w, 1)).astype(np.float32)
    image = np.clip(img, 0, 255).astype(np.uint8)
    return SegmentationSample(image=image, mask=mask, name=f"synthscapes/{split}/{index}")


class SynthScapes(Sequence[SegmentationSample]):
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

    @overload
    def __getitem__(self, i: int) -> SegmentationSample: ...

    @overload
    def __getitem__(self, i: slice) -> list[SegmentationSample]: ...

    def __getitem__(self, i: int | slice) -> SegmentationSample | list[SegmentationSample]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self.length))]
        if i < 0:
            i += self.length
        if not 0 <= i < self.length:
            raise IndexError(f"scene {i} out of range for {self.length} scenes")
        index = self.index_of(i)
        sample = generate_scene(index, self.seed, self.size, split=self.split)
        return SegmentationSample(sample.image, sample.mask, f"synthscapes/{self.split}/{i}")

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
