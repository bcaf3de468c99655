"""Objects of a ground-truth mask and their sizes (DESIGN 1.7, issue 19 item 1).

Objects are the data's instances where it has them (SynthScapes' instance map, Cityscapes'
``*_instanceIds.png``), else the connected components of each class in the mask
(:func:`skimage.measure.label`, 8-connectivity); area and equivalent diameter come from
:func:`skimage.measure.regionprops`. Sizes are binned COCO-like on the object's area as a share
of the image (:class:`SizeBins`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi
from skimage.measure import label, regionprops

SOURCES = ("instances", "components", "instances+components")


@dataclass(frozen=True)
class SizeBins:
    """Size bins of objects, on area as a share of the image, COCO-like.

    COCO calls an object small below 32^2 px and large above 96^2 px on its typical 640 x 480
    image; as shares of that image the thresholds are 32^2 / 307200 = 0.33% and
    96^2 / 307200 = 3%, which is what we use, so the bins do not change with the resolution.

    Attributes:
        small_max: an object with ``share < small_max`` is small (default 0.0033 = 0.33%).
        medium_max: ``small_max <= share < medium_max`` is medium; above, large (default 0.03).
        diameter_edges: log-spaced edges (pixels, at the analysed resolution) of the
            equivalent-diameter bins used by the plots; the last bin is open-ended.
    """

    small_max: float = 32**2 / (640 * 480)
    medium_max: float = 96**2 / (640 * 480)
    diameter_edges: tuple[float, ...] = (0.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0)

    names: tuple[str, ...] = field(default=("small", "medium", "large"), init=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.small_max < self.medium_max < 1.0:
            raise ValueError(
                f"size bins need 0 < small_max < medium_max < 1, got {self.small_max}, "
                f"{self.medium_max}"
            )
        edges = np.asarray(self.diameter_edges, dtype=np.float64)
        if len(edges) < 2 or np.any(np.diff(edges) <= 0):
            raise ValueError(f"diameter_edges must increase, got {self.diameter_edges}")

    def size_bin(self, share: np.ndarray) -> np.ndarray:
        """Returns ``(N,)`` int64 bin index (0 small, 1 medium, 2 large) of ``(N,)`` shares."""
        share = np.asarray(share, dtype=np.float64)
        return np.searchsorted(np.array([self.small_max, self.medium_max]), share, side="right")

    def diameter_bin(self, diameter: np.ndarray) -> np.ndarray:
        """Returns ``(N,)`` int64 diameter-bin index in ``0 .. len(edges) - 1`` (last: open)."""
        edges = np.asarray(self.diameter_edges, dtype=np.float64)
        return np.clip(np.searchsorted(edges, diameter, side="right") - 1, 0, len(edges) - 1)

    def diameter_names(self) -> tuple[str, ...]:
        """Returns one label per diameter bin, e.g. ``"4-8 px"``, the last ``">= 256 px"``."""
        e = self.diameter_edges
        return (*tuple(f"{e[i]:g}-{e[i + 1]:g} px" for i in range(len(e) - 1)), f">= {e[-1]:g} px")

    def describe(self) -> str:
        """Returns the thresholds in words (for tables and figure captions)."""
        return (
            f"small < {100 * self.small_max:.2f}% of the image <= medium < "
            f"{100 * self.medium_max:.2f}% <= large"
        )


@dataclass
class ObjectTable:
    """The objects of one mask.

    Attributes:
        source: ``"instances"``, ``"components"`` or ``"instances+components"`` (instances for
            the pixels the instance map covers, components of each class elsewhere).
        object_map: ``(H, W)`` int32, object id at every pixel (0 = none: ignore pixels).
        ids: ``(N,)`` int32 object ids (as in ``object_map``), ascending.
        classes: ``(N,)`` int64 class id of each object.
        areas: ``(N,)`` int64 pixels of each object.
        diameters: ``(N,)`` float64 equivalent diameter (px) of a disc of the same area.
        shares: ``(N,)`` float64 area as a share of the image.
        distances: ``(N,)`` float64 camera distance (metres), NaN when unknown.
        notes: messages about the input (e.g. an instance map disagreeing with the mask).
    """

    source: str
    object_map: np.ndarray
    ids: np.ndarray
    classes: np.ndarray
    areas: np.ndarray
    diameters: np.ndarray
    shares: np.ndarray
    distances: np.ndarray
    notes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def size(self) -> tuple[int, int]:
        """Returns ``(H, W)``."""
        return int(self.object_map.shape[0]), int(self.object_map.shape[1])

    def index_map(self) -> np.ndarray:
        """Returns ``(H, W)`` int64 row of each pixel's object in this table, -1 for none."""
        lookup = np.full(int(self.object_map.max(initial=0)) + 1, -1, dtype=np.int64)
        lookup[self.ids] = np.arange(len(self.ids))
        return lookup[self.object_map]


def _components(mask: np.ndarray, num_classes: int, skip: np.ndarray) -> np.ndarray:
    """Returns ``(H, W)`` int32 labels of the 8-connected components of every class, pixels in
    ``skip`` (or outside ``[0, C)``) left 0. Components of different classes never merge: each
    class is labelled on its own bounding box."""
    out = np.zeros(mask.shape, dtype=np.int32)
    ids = np.where(skip | (mask < 0) | (mask >= num_classes), 0, mask + 1)
    next_id = 0
    for k, box in enumerate(ndi.find_objects(ids)):  # the bounding box of each class
        if box is None:
            continue
        region = ids[box] == k + 1
        labelled, n = label(region, connectivity=2, return_num=True)
        out[box][region] = labelled[region] + next_id
        next_id += n
    return out


def find_objects(
    mask: np.ndarray,
    num_classes: int,
    instances: np.ndarray | None = None,
    distances: Mapping[int, float] | None = None,
    ignore_index: int = 255,
) -> ObjectTable:
    """Returns the :class:`ObjectTable` of a ``(H, W)`` class mask.

    Args:
        mask: ``(H, W)`` class ids; ``ignore_index`` pixels belong to no object.
        num_classes: the label set's size; ids outside ``[0, C)`` (other than ignore) are
            an error.
        instances: optional ``(H, W)`` instance ids (0 = none). Pixels with an instance form
            that object; every other pixel is grouped in connected components of its class.
            An instance covering pixels of several classes is split by class (noted).
        distances: optional instance id -> camera distance in metres.
        ignore_index: the ignore id.

    Raises:
        ValueError: a mask that is not 2-D, ids outside the label set, or an instance map of
            another size.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be (H, W), got shape {mask.shape}")
    mask = mask.astype(np.int64, copy=False)
    bad = np.zeros(0, np.int64)
    if mask.size and (mask.min() < 0 or mask.max() >= num_classes):
        bad = np.unique(mask[((mask < 0) | (mask >= num_classes)) & (mask != ignore_index)])
    if bad.size:
        raise ValueError(
            f"mask holds class ids outside 0..{num_classes - 1} (and {ignore_index} for ignore): "
            f"{', '.join(str(int(v)) for v in bad[:10])}; fix the mask or the label set"
        )
    notes: list[str] = []
    ignore = mask == ignore_index
    dist_of_id: dict[int, float] = {}
    if instances is None:
        object_map = _components(mask, num_classes, ignore)
        source = "components"
    else:
        inst = np.asarray(instances)
        if inst.shape != mask.shape:
            raise ValueError(
                f"instance map is {inst.shape[1]} x {inst.shape[0]} but the mask is "
                f"{mask.shape[1]} x {mask.shape[0]}"
            )
        object_map, dist_of_id, inst_notes = _instances_and_components(
            mask, num_classes, inst.astype(np.int64, copy=False), ignore, distances
        )
        notes += inst_notes
        has_inst = bool((inst[~ignore] > 0).any())
        source = "instances+components" if has_inst else "components"
    return _table(object_map, mask, source, dist_of_id, tuple(notes))


def _instances_and_components(
    mask: np.ndarray,
    num_classes: int,
    inst: np.ndarray,
    ignore: np.ndarray,
    distances: Mapping[int, float] | None,
) -> tuple[np.ndarray, dict[int, float], list[str]]:
    """Returns ``(object_map, distance per object id, notes)`` for instances + components."""
    notes = []
    covered = (inst > 0) & ~ignore
    # One object per (instance, class) pair, so an instance never spans two classes.
    pairs = inst[covered] * (num_classes + 1) + mask[covered]
    uniq, dense = np.unique(pairs, return_inverse=True)
    inst_of = uniq // (num_classes + 1)
    if len(np.unique(inst_of)) != len(uniq):
        mixed = np.unique(inst_of[np.r_[False, np.diff(inst_of) == 0]])
        notes.append(
            f"{len(mixed)} instance(s) cover pixels of several classes in the mask (e.g. id "
            f"{int(mixed[0])}); each was split by class"
        )
    object_map = np.zeros(mask.shape, dtype=np.int32)
    object_map[covered] = dense.astype(np.int32) + 1
    comps = _components(mask, num_classes, covered | ignore)
    object_map[comps > 0] = comps[comps > 0] + len(uniq)
    dist_of_id: dict[int, float] = {}
    if distances:
        for k, inst_id in enumerate(inst_of):
            if int(inst_id) in distances:
                dist_of_id[k + 1] = float(distances[int(inst_id)])
    return object_map, dist_of_id, notes


def _table(
    object_map: np.ndarray,
    mask: np.ndarray,
    source: str,
    dist_of_id: Mapping[int, float],
    notes: tuple[str, ...],
) -> ObjectTable:
    """Returns the :class:`ObjectTable` of a labelled object map (regionprops per object)."""
    props = regionprops(object_map)
    n = len(props)
    ids = np.fromiter((p.label for p in props), dtype=np.int32, count=n)
    areas = np.fromiter((p.area for p in props), dtype=np.int64, count=n)
    class_of = np.zeros(int(object_map.max(initial=0)) + 1, dtype=np.int64)
    class_of[object_map.ravel()] = mask.ravel()  # every pixel of an object has its class
    classes = class_of[ids]
    diameters = np.fromiter((p.equivalent_diameter_area for p in props), np.float64, count=n)
    dist = np.array([dist_of_id.get(int(i), np.nan) for i in ids], dtype=np.float64)
    return ObjectTable(
        source=source,
        object_map=object_map,
        ids=ids,
        classes=classes,
        areas=areas,
        diameters=diameters,
        shares=areas / float(mask.size),
        distances=dist,
        notes=notes,
    )
