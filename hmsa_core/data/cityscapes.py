"""The Cityscapes folder layout: ``leftImg8bit`` images with ``gtFine`` label-id masks.

Layout (as distributed by cityscapes-dataset.com)::

    root/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    root/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png
    root/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_instanceIds.png   (optional)

Label ids are mapped to the 19 trainIds (everything else to 255) with
:func:`hmsa_core.labels.label_ids_to_train_ids`. Where an ``*_instanceIds.png`` lies next to the
label file, its instances (values >= 1000: ``labelId * 1000 + k``) become the sample's
``instances`` map (0 elsewhere: stuff, and crowd regions without instance).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from hmsa_core.data.sample import SampleView, SegmentationSample
from hmsa_core.images import load_mask, load_rgb, rgb_to_uint8
from hmsa_core.labels import label_ids_to_train_ids

IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"
INSTANCE_SUFFIX = "_gtFine_instanceIds.png"


def is_cityscapes_root(root: str | os.PathLike) -> bool:
    """Returns True when ``root`` holds a ``leftImg8bit`` folder (the Cityscapes layout)."""
    return (Path(root) / "leftImg8bit").is_dir()


def label_path_for(image_path: Path, root: Path, split: str) -> Path:
    """Returns the ``gtFine`` label-id file that belongs to a ``leftImg8bit`` image file."""
    stem = image_path.name[: -len(IMAGE_SUFFIX)]
    return root / "gtFine" / split / image_path.parent.name / f"{stem}{LABEL_SUFFIX}"


def load_instances(label_path: Path, shape: tuple[int, int]) -> np.ndarray | None:
    """Returns the ``(H, W)`` int32 instance map next to a label-id file (ids >= 1000 kept, 0
    elsewhere), or ``None`` when there is no ``*_instanceIds.png``.

    Raises:
        ValueError: an instance file whose size differs from the mask's.
    """
    path = label_path.with_name(label_path.name[: -len(LABEL_SUFFIX)] + INSTANCE_SUFFIX)
    if not path.is_file():
        return None
    ids = load_mask(path)
    if ids.shape != shape:
        raise ValueError(
            f"{path.name} is {ids.shape[1]} x {ids.shape[0]} but its mask is {shape[1]} x {shape[0]}"
        )
    return np.where(ids >= 1000, ids, 0).astype(np.int32)


class Cityscapes(SampleView):
    """A Cityscapes split as a sequence of :class:`SegmentationSample` (loaded on access).

    Each sample's ``image`` is ``(H, W, 3)`` uint8 RGB and ``mask`` ``(H, W)`` int64 trainIds
    (255 = ignore), ``instances`` ``(H, W)`` int32 when the split has ``*_instanceIds.png``;
    ``name`` is ``<city>/<stem>``. Samples are ordered by city, then file name.

    Raises:
        ValueError: ``root`` is not a Cityscapes layout, the split has no images, or an image
            has no ``gtFine`` label-id file.
    """

    def __init__(self, root: str | os.PathLike, split: str = "val") -> None:
        self.root = Path(root)
        self.split = split
        images_dir = self.root / "leftImg8bit"
        if not images_dir.is_dir():
            raise ValueError(
                f"{self.root} is not a Cityscapes folder: no 'leftImg8bit' subfolder "
                "(expected root/leftImg8bit/<split>/<city>/*_leftImg8bit.png)"
            )
        split_dir = images_dir / split
        if not split_dir.is_dir():
            found = sorted(p.name for p in images_dir.iterdir() if p.is_dir())
            raise ValueError(
                f"Cityscapes split {split!r} not found under {images_dir} "
                f"(splits present: {', '.join(found) or 'none'})"
            )
        self.image_paths: list[Path] = sorted(split_dir.glob(f"*/*{IMAGE_SUFFIX}"))
        if not self.image_paths:
            raise ValueError(
                f"no '*{IMAGE_SUFFIX}' images in {split_dir}/<city>/: not a Cityscapes layout"
            )
        self.label_paths: list[Path] = [
            label_path_for(p, self.root, split) for p in self.image_paths
        ]
        missing = [p for p in self.label_paths if not p.is_file()]
        if missing:
            shown = ", ".join(str(p.relative_to(self.root)) for p in missing[:3])
            more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
            raise ValueError(
                f"{len(missing)} Cityscapes label file(s) missing under {self.root}: {shown}{more}"
            )

    def __len__(self) -> int:
        return len(self.image_paths)

    def _item(self, index: int) -> SegmentationSample:
        """Returns the sample at ``index`` (see :class:`SampleView` for indexing)."""
        image_path = self.image_paths[index]
        image = rgb_to_uint8(load_rgb(image_path))
        mask = label_ids_to_train_ids(load_mask(self.label_paths[index])).astype("int64")
        if mask.shape != image.shape[:2]:
            raise ValueError(
                f"{self.label_paths[index].name} is {mask.shape[1]} x {mask.shape[0]} but its image "
                f"is {image.shape[1]} x {image.shape[0]}"
            )
        stem = image_path.name[: -len(IMAGE_SUFFIX)]
        instances = load_instances(self.label_paths[index], mask.shape)
        return SegmentationSample(
            image=image, mask=mask, name=f"{image_path.parent.name}/{stem}", instances=instances
        )
