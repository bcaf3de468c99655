"""SynthScapes' objects: poles with signs, people and cars painted over the empty street.

Each painter writes the image, the class mask and, when given an :class:`Instances` record,
the instance map (one id per object, a pole's sign its own) and the object's camera distance.
Recording instances draws no random number, so images and masks are the same with or without.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hmsa_core.data.synthscapes_scene import CAR, PERSON, POLE, SIGN, _project, _Street


@dataclass
class Instances:
    """The instance map of a scene being painted.

    Attributes:
        map: ``(H, W)`` int32 instance id of every pixel, 0 for none (the background).
        distance: instance id -> the object's camera distance z (metres).
    """

    map: np.ndarray
    distance: dict[int, float] = field(default_factory=dict)

    def new(self, z: float) -> int:
        """Returns a fresh instance id for an object at distance ``z``."""
        ident = len(self.distance) + 1
        self.distance[ident] = float(z)
        return ident


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
    inst: tuple[np.ndarray, int] | None = None,
) -> None:
    """Paints ``color`` and class ``cls`` (and instance ``inst = (map, id)``) on ``box``, or on
    its ``where`` pixels."""
    if box is None:
        return
    if where is None:
        img[box] = color
        mask[box] = cls
        if inst is not None:
            inst[0][box] = inst[1]
    else:
        img[box][where] = color
        mask[box][where] = cls
        if inst is not None:
            inst[0][box][where] = inst[1]


def _draw_pole(
    img: np.ndarray,
    mask: np.ndarray,
    street: _Street,
    rng: np.random.Generator,
    x: float,
    z: float,
    instances: Instances | None = None,
) -> None:
    """A pole 1-4 px wide, sometimes carrying a traffic sign."""
    inst = None if instances is None else (instances.map, instances.new(z))
    size = mask.shape
    u, v_foot = _project(street, x, 0.0, z)
    height = rng.uniform(3.5, 7.0)
    _, v_top = _project(street, x, height, z)
    width = int(np.clip(round(street.focal * 0.12 / z), 1, 4))
    grey = rng.uniform(110, 175)
    left = float(np.floor(u - width / 2))  # whole pixels: the pole is exactly `width` wide
    box = _box(size, left, left + width, v_top, v_foot)
    _paint(img, mask, box, np.array([grey, grey, grey * 1.02]), POLE, inst=inst)
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
        sign = None if instances is None else (instances.map, instances.new(z))
        _paint(img, mask, box, color * rng.uniform(0.85, 1.1), SIGN, where, sign)


def _draw_person(
    img: np.ndarray,
    mask: np.ndarray,
    street: _Street,
    rng: np.random.Generator,
    x: float,
    z: float,
    instances: Instances | None = None,
) -> None:
    """A person: a head disc over a torso and legs, in random clothes."""
    inst = None if instances is None else (instances.map, instances.new(z))
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
        inst=inst,
    )
    _paint(
        img,
        mask,
        _box(size, u - half * 0.8, u + half * 0.8, v_foot - 0.85 * px, v_foot),
        trousers,
        PERSON,
        inst=inst,
    )
    r = max(0.12 * px, 0.6)
    box = _box(size, u - r, u + r, v_head, v_head + 2 * r)
    if box is not None:
        hh, ww = box[0].stop - box[0].start, box[1].stop - box[1].start
        yy, xx = np.mgrid[0:hh, 0:ww]
        cy, cx = v_head + r - box[0].start - 0.5, u - box[1].start - 0.5
        where = (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2 + 0.5
        _paint(img, mask, box, skin, PERSON, where, inst)


def _draw_car(
    img: np.ndarray,
    mask: np.ndarray,
    street: _Street,
    rng: np.random.Generator,
    x: float,
    z: float,
    instances: Instances | None = None,
) -> None:
    """A car seen from behind: body, a darker window band, wheels and lights."""
    inst = None if instances is None else (instances.map, instances.new(z))
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
        inst=inst,
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
        inst=inst,
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
            inst=inst,
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
            inst=inst,
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
