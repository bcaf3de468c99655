"""SynthScapes' street: class ids, camera, the random layout and the empty street's pixels.

The camera stands ``CAMERA_HEIGHT`` metres above the ground looking down +z; world x is to the
right, y up. :func:`_render_background` resolves every pixel once (side facades, ground, the
building closing the street, else sky); the objects are painted over it by
:mod:`hmsa_core.data.synthscapes_draw`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

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


@dataclass
class _Canvas:
    """The flat pixel buffers of one background render, and what each side shares."""

    street: _Street
    size: tuple[int, int]
    mask: np.ndarray  # (H*W,) int64
    img: np.ndarray  # (H*W, 3) float32
    resolved: np.ndarray  # (H*W,) bool
    du: np.ndarray  # (H*W,) column offset from the centre (pixels)
    dv: np.ndarray  # (H*W,) row offset from the horizon (pixels)
    pavement: np.ndarray
    green: np.ndarray
    offs: list[tuple[float, float]]
    camera_z: float = 0.0


def _render_background(
    street: _Street, rng: np.random.Generator, size: tuple[int, int], camera_z: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``(image (H, W, 3) float32 in 0-255, mask (H, W) int64)`` of the empty street.

    Works on flat pixel subsets: every pixel is resolved once (side facade, ground, the
    building closing the street, else sky) and coloured only where it was resolved.
    ``camera_z`` moves the camera forward along +z (metres; 0 = the scene's own view).
    """
    h, w = size
    n = h * w
    # Colours shared by look-alike pairs: one pavement, one green, per scene.
    pavement = rng.uniform(95, 140) * np.array([1.0, 1.0, 1.03]) * rng.uniform(0.95, 1.05, 3)
    green = np.array([70, 105, 45]) * rng.uniform(0.8, 1.2) * rng.uniform(0.9, 1.1, 3)
    offs = [tuple(rng.uniform(0, _TEX_SIZE, 2)) for _ in range(4)]
    canvas = _Canvas(
        street=street,
        size=(h, w),
        mask=np.full(n, SKY, dtype=np.int64),
        img=np.zeros((n, 3), dtype=np.float32),
        resolved=np.zeros(n, dtype=bool),
        du=np.tile(np.arange(w, dtype=np.float32) + 0.5 - street.centre, h),
        dv=np.repeat(np.arange(h, dtype=np.float32) + 0.5 - street.horizon, w),
        pavement=pavement,
        green=green,
        offs=offs,
        camera_z=float(camera_z),
    )
    for side, sign in ((0, -1.0), (1, 1.0)):
        _render_facade(canvas, side, sign)
    _render_ground(canvas)
    _render_end(canvas)
    _render_sky(canvas, rng)
    return canvas.img.reshape(h, w, 3), canvas.mask.reshape(h, w)


def _render_facade(canvas: _Canvas, side: int, sign: float) -> None:
    """Resolves the side facade ``side``: the ray through (u, v) meets the plane |X| = B at
    depth z (view depth; ``z + camera_z`` in the world)."""
    street, cz = canvas.street, canvas.camera_z
    tex, tex2 = _noise_texture(0), _noise_texture(1)
    f = street.focal
    bx = street.facade_x(side)
    idx = np.flatnonzero(canvas.du * sign > 0.5)
    du, dv = canvas.du[idx], canvas.dv[idx]
    z = f * bx / np.abs(du)
    y = CAMERA_HEIGHT - dv * z / f
    keep = (z < street.z_end - cz) & (y >= 0)
    idx, z, y = idx[keep], z[keep] + cz, y[keep]  # z: world depth from here on
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
    fac_tex = _sample(tex, fy, fz, canvas.offs[0])
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
    canvas.img[fi] = col
    canvas.mask[fi] = np.where(fkind == _SEG_WALL, WALL, BUILDING)
    ti, tz, ty = idx[trees], z[trees], y[trees]
    veg_tex = _sample(tex2, ty, tz, canvas.offs[1])
    canvas.img[ti] = canvas.green * ((1 + 0.3 * veg_tex) * shade)[:, None]
    canvas.mask[ti] = VEGETATION
    canvas.resolved[fi] = True
    canvas.resolved[ti] = True


def _render_ground(canvas: _Canvas) -> None:
    """Resolves the ground plane: depth from the row, X from the column."""
    street, cz = canvas.street, canvas.camera_z
    tex, tex2 = _noise_texture(0), _noise_texture(1)
    f = street.focal
    idx = np.flatnonzero((canvas.dv > 0.5) & ~canvas.resolved)
    zg = f * CAMERA_HEIGHT / canvas.dv[idx]
    keep = zg < street.z_end - cz
    idx, zg = idx[keep], zg[keep]
    xg = canvas.du[idx] * zg / f
    zw = zg + cz  # world depth
    ax = np.abs(xg)
    edge_x = street.road + street.sidewalk
    cls = np.where(ax < street.road, ROAD, np.where(ax < edge_x, SIDEWALK, TERRAIN))
    pav_tex = _sample(tex, xg, zw, canvas.offs[2])
    col = canvas.pavement * (1 + 0.16 * pav_tex)[:, None]
    kerb = (ax > street.road) & (ax < street.road + 0.2)
    col[kerb] *= 1.35
    dash = (ax < 0.08) & (np.mod(zw, 9.0) < 3.0)
    col[dash] = np.array([215.0, 215.0, 205.0])
    grass = cls == TERRAIN
    col[grass] = (
        canvas.green * (1 + 0.3 * _sample(tex2, xg[grass], zw[grass], canvas.offs[3]))[:, None]
    )
    canvas.img[idx] = col
    canvas.mask[idx] = cls
    canvas.resolved[idx] = True


def _render_end(canvas: _Canvas) -> None:
    """Resolves the building closing the street (at view depth ``z_end - camera_z``)."""
    street = canvas.street
    tex = _noise_texture(0)
    f = street.focal
    z_end = street.z_end - canvas.camera_z
    bx = max(street.facade_x(0), street.facade_x(1))
    idx = np.flatnonzero(~canvas.resolved)
    ye = CAMERA_HEIGHT - canvas.dv[idx] * z_end / f
    xe = canvas.du[idx] * z_end / f
    end = (np.abs(xe) < bx) & (ye >= 0) & (ye <= street.end_height)
    ei = idx[end]
    end_tex = _sample(tex, ye[end], xe[end], canvas.offs[0])
    canvas.img[ei] = street.end_color * (0.9 * (1 + 0.16 * end_tex))[:, None]
    canvas.mask[ei] = BUILDING
    canvas.resolved[ei] = True


def _render_sky(canvas: _Canvas, rng: np.random.Generator) -> None:
    """Colours every unresolved pixel as sky: a vertical gradient with soft clouds."""
    street = canvas.street
    tex2 = _noise_texture(1)
    idx = np.flatnonzero(~canvas.resolved)
    sky_top = np.array([70, 120, 190]) * rng.uniform(0.85, 1.1)
    sky_low = np.array([185, 205, 225]) * rng.uniform(0.9, 1.05)
    v = canvas.dv[idx] + street.horizon
    t = np.clip(v / max(street.horizon, 1.0), 0, 1)[:, None]
    cloud = np.clip(
        _sample(tex2, v / 60.0, (canvas.du[idx] + street.centre) / 60.0, canvas.offs[1]), 0, None
    )
    canvas.img[idx] = sky_top * (1 - t) + sky_low * t + 25 * cloud[:, None]


def _project(street: _Street, x: float, y: float, z: float) -> tuple[float, float]:
    """Returns the image ``(u, v)`` of world point ``(x, y, z)`` (y up from the ground)."""
    return street.centre + street.focal * x / z, street.horizon + street.focal * (
        CAMERA_HEIGHT - y
    ) / z
