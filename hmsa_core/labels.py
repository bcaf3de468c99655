"""Label sets: class names, palette colours, the ignore index and label-id mappings."""

from __future__ import annotations

import colorsys
import functools
import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import torch

IGNORE_INDEX = 255


@dataclass(frozen=True)
class LabelSet:
    """A set of semantic classes with their display colours.

    Attributes:
        name: short identifier, e.g. ``"cityscapes"``.
        names: class names indexed by class id (trainId).
        colors: RGB triples (0-255) indexed by class id.
        ignore_index: the label value that marks pixels without ground truth.
    """

    name: str
    names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]
    ignore_index: int = IGNORE_INDEX
    _palette: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.names) != len(self.colors):
            raise ValueError(
                f"label set {self.name!r}: {len(self.names)} names but {len(self.colors)} colours"
            )
        if not self.names:
            raise ValueError(f"label set {self.name!r} has no classes")
        palette = np.zeros((256, 3), dtype=np.uint8)
        palette[: len(self.colors)] = np.asarray(self.colors, dtype=np.uint8)
        object.__setattr__(self, "_palette", palette)

    @property
    def num_classes(self) -> int:
        """Returns the number of classes C."""
        return len(self.names)

    @property
    def palette(self) -> np.ndarray:
        """Returns a ``(256, 3)`` uint8 lookup table; entries past C (and the ignore index) are black."""
        return self._palette.copy()

    def flat_palette(self) -> list[int]:
        """Returns the palette flattened to 768 ints, the form PIL's ``Image.putpalette`` takes."""
        return self._palette.reshape(-1).tolist()

    def colorize(self, class_map: np.ndarray | torch.Tensor) -> np.ndarray:
        """Returns the ``(H, W, 3)`` uint8 RGB image of an ``(H, W)`` class-id map.

        Ids outside ``[0, C)`` (the ignore index included) are drawn black.
        """
        ids = class_map.detach().cpu().numpy() if isinstance(class_map, torch.Tensor) else class_map
        ids = np.asarray(ids)
        if ids.ndim != 2:
            raise ValueError(f"colorize expects an (H, W) class map, got shape {ids.shape}")
        ids = ids.astype(np.int64)
        valid = (ids >= 0) & (ids < self.num_classes)
        return self._palette[np.where(valid, ids, 255).clip(0, 255)]

    def validate_mask(self, mask: np.ndarray) -> None:
        """Raises ``ValueError`` naming the offending ids if ``mask`` holds ids outside the set.

        Valid values are ``0 .. C-1`` and the ignore index.
        """
        values = np.unique(np.asarray(mask))
        bad = [int(v) for v in values if not (0 <= v < self.num_classes or v == self.ignore_index)]
        if bad:
            shown = ", ".join(str(v) for v in bad[:10]) + (" ..." if len(bad) > 10 else "")
            raise ValueError(
                f"mask holds class ids outside the {self.name} label set "
                f"(valid: 0..{self.num_classes - 1} and {self.ignore_index} for ignore): {shown}"
            )


CITYSCAPES = LabelSet(
    name="cityscapes",
    names=(
        "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
        "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car",
        "truck", "bus", "train", "motorcycle", "bicycle",
    ),
    colors=(
        (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
        (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
        (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70),
        (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
    ),
)  # fmt: skip

# Cityscapes label ids (gtFine *_labelIds.png) of the 19 evaluated classes, in trainId order.
CITYSCAPES_EVAL_LABEL_IDS: tuple[int, ...] = (
    7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33,
)  # fmt: skip


def cityscapes_label_to_train_lut() -> np.ndarray:
    """Returns a ``(256,)`` uint8 lookup table from Cityscapes label ids to trainIds (255 = ignore)."""
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for train_id, label_id in enumerate(CITYSCAPES_EVAL_LABEL_IDS):
        lut[label_id] = train_id
    return lut


def label_ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Returns the ``(H, W)`` uint8 trainId map of an ``(H, W)`` Cityscapes label-id map."""
    ids = np.asarray(label_ids)
    if ids.min(initial=0) < 0 or ids.max(initial=0) > 255:
        raise ValueError("Cityscapes label ids must lie in 0..255")
    return cityscapes_label_to_train_lut()[ids.astype(np.int64)]


def distinct_colors(n: int, seed: int = 0) -> tuple[tuple[int, int, int], ...]:
    """Returns ``n`` visually distinct RGB colours (golden-ratio hue walk, alternating lightness)."""
    colors = []
    golden = 0.618033988749895
    hue = (seed * golden) % 1.0
    for i in range(n):
        hue = (hue + golden) % 1.0
        lightness = (0.45, 0.6, 0.35)[i % 3]
        saturation = (0.75, 0.55, 0.9)[(i // 3) % 3]
        r, g, b = colorsys.hls_to_rgb(hue, lightness, saturation)
        colors.append((round(r * 255), round(g * 255), round(b * 255)))
    return tuple(colors)


def generic_label_set(num_classes: int, name: str | None = None) -> LabelSet:
    """Returns a label set with names ``class_0 .. class_{C-1}`` and a distinct palette."""
    if not 1 <= num_classes <= 255:
        raise ValueError(f"num_classes must lie in 1..255, got {num_classes}")
    return LabelSet(
        name=name or f"generic{num_classes}",
        names=tuple(f"class_{i}" for i in range(num_classes)),
        colors=distinct_colors(num_classes),
    )


#: The bundled Mapillary Vistas v1.2 label file (package data of ``hmsa_core``).
MAPILLARY_LABEL_FILE = "label_sets/mapillary_vistas_v1.2.json"
MAPILLARY_NUM_CLASSES = 65


@functools.lru_cache(maxsize=1)
def mapillary_vistas() -> LabelSet:
    """Returns the 65 Mapillary Vistas v1.2 classes with the dataset's own colours (read once
    from the bundled label file)."""
    text = resources.files("hmsa_core").joinpath(MAPILLARY_LABEL_FILE).read_text(encoding="utf-8")
    return label_set_from_dict(json.loads(text))


def label_set_for(num_classes: int) -> LabelSet:
    """Returns the label set implied by a class count: 19 is Cityscapes, 65 Mapillary Vistas
    v1.2 (NVIDIA's Mapillary checkpoint), anything else generic."""
    if num_classes == CITYSCAPES.num_classes:
        return CITYSCAPES
    if num_classes == MAPILLARY_NUM_CLASSES:
        return mapillary_vistas()
    return generic_label_set(num_classes)


def label_set_to_dict(labels: LabelSet) -> dict:
    """Returns a JSON-serialisable dict of a label set (for checkpoint metadata)."""
    return {
        "name": labels.name,
        "names": list(labels.names),
        "colors": [list(c) for c in labels.colors],
        "ignore_index": labels.ignore_index,
    }


def label_set_from_dict(data: dict) -> LabelSet:
    """Returns the label set described by :func:`label_set_to_dict`'s output; ``ValueError`` if malformed."""
    try:
        return LabelSet(
            name=str(data["name"]),
            names=tuple(str(n) for n in data["names"]),
            colors=tuple((int(c[0]), int(c[1]), int(c[2])) for c in data["colors"]),
            ignore_index=int(data.get("ignore_index", IGNORE_INDEX)),
        )
    except (KeyError, TypeError, IndexError) as exc:
        raise ValueError(f"malformed label set description: {exc}") from exc


def label_set_from_file(path: str | os.PathLike) -> LabelSet:
    """Returns the label set in a JSON file: ``{"names": [...]}`` with optional ``"colors"``
    (RGB triples; distinct generated colours when absent), ``"name"`` (default: the file's
    stem) and ``"ignore_index"``. ``ValueError`` says what is wrong with a malformed file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"label file {path.name} is not readable JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("names"), list):
        raise ValueError(f'label file {path.name} must be a JSON object with a "names" list')
    data.setdefault("name", path.name.split(".")[0])
    data.setdefault("colors", [list(c) for c in distinct_colors(len(data["names"]))])
    return label_set_from_dict(data)


def sidecar_label_file(checkpoint: str | os.PathLike) -> Path:
    """Returns where a checkpoint's own label file sits: ``name.pth`` -> ``name.labels.json``."""
    path = Path(checkpoint)
    return path.with_name(path.stem + ".labels.json")
