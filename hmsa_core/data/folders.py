"""A plain folder of images, with optional same-named class-id masks.

Two layouts are recognised, per image (both may be mixed in one folder)::

    root/street.jpg            root/street.jpg
    root/masks/street.png      root/street_mask.png

i.e. the mask of ``<stem>.<ext>`` is ``masks/<stem>.png`` in a ``masks/`` subfolder, or
``<stem>_mask.png`` beside the image; when both exist, ``masks/<stem>.png`` wins. Images may
also live in an ``images/`` subfolder (``root/images/street.jpg`` + ``root/masks/street.png``).
Files named ``*_mask.*`` are never taken as images. An image without a mask is allowed
(its sample's ``mask`` is ``None``).

Masks hold class ids (255 = ignore); palette PNGs are read as their indices, not colours
(see :func:`hmsa_core.images.load_mask`).
"""

from __future__ import annotations

import os
from pathlib import Path

from hmsa_core.data.sample import SampleView, SegmentationSample
from hmsa_core.images import load_mask, load_rgb, rgb_to_uint8
from hmsa_core.labels import LabelSet

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
MASK_SUFFIX = "_mask"
MASKS_DIR = "masks"
IMAGES_DIR = "images"


def find_mask(image_path: Path, root: Path) -> Path | None:
    """Returns the mask file of an image (``root/masks/<stem>.png``, else ``<stem>_mask.png``
    beside the image), or ``None`` when it has none."""
    in_masks = root / MASKS_DIR / f"{image_path.stem}.png"
    if in_masks.is_file():
        return in_masks
    beside = image_path.with_name(f"{image_path.stem}{MASK_SUFFIX}.png")
    return beside if beside.is_file() else None


def list_images(folder: Path) -> list[Path]:
    """Returns the image files directly in ``folder`` (not ``*_mask.*``), sorted by name."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.stem.endswith(MASK_SUFFIX)
    )


class ImageFolder(SampleView):
    """A folder of images (and optional masks) as a sequence of :class:`SegmentationSample`.

    Each sample's ``image`` is ``(H, W, 3)`` uint8 RGB, ``mask`` ``(H, W)`` int64 class ids or
    ``None``, ``name`` the image's file stem. Samples are ordered by file name.

    Args:
        root: the folder (images directly in it, or in ``root/images``).
        labels: when given, masks are checked to hold only ids of this label set (or 255).
        require_masks: raise if any image has no mask.

    Raises:
        ValueError: not a folder, no images in it, or (``require_masks``) an image without mask.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        labels: LabelSet | None = None,
        require_masks: bool = False,
    ) -> None:
        self.root = Path(root)
        self.labels = labels
        if not self.root.is_dir():
            raise ValueError(f"{self.root} is not a folder")
        image_dir = self.root / IMAGES_DIR if (self.root / IMAGES_DIR).is_dir() else self.root
        self.image_paths: list[Path] = list_images(image_dir)
        if not self.image_paths:
            raise ValueError(
                f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {image_dir}; expected "
                "<stem>.<ext> images with masks/<stem>.png or <stem>_mask.png"
            )
        self.mask_paths: list[Path | None] = [find_mask(p, self.root) for p in self.image_paths]
        if require_masks:
            missing = [p.name for p, m in zip(self.image_paths, self.mask_paths) if m is None]
            if missing:
                raise ValueError(
                    f"{len(missing)} image(s) in {self.root} have no mask "
                    f"(masks/<stem>.png or <stem>_mask.png): {', '.join(missing[:5])}"
                )

    @property
    def num_labelled(self) -> int:
        """Returns how many images have a mask."""
        return sum(m is not None for m in self.mask_paths)

    def __len__(self) -> int:
        return len(self.image_paths)

    def _item(self, index: int) -> SegmentationSample:
        """Returns the sample at ``index`` (see :class:`SampleView` for indexing).

        Raises ``ValueError`` when the mask's size differs from the image's, or it holds ids
        outside ``labels``.
        """
        image_path = self.image_paths[index]
        image = rgb_to_uint8(load_rgb(image_path))
        mask_path = self.mask_paths[index]
        mask = None
        if mask_path is not None:
            mask = load_mask(mask_path)
            if mask.shape != image.shape[:2]:
                raise ValueError(
                    f"mask {mask_path.name} is {mask.shape[1]} x {mask.shape[0]} but image "
                    f"{image_path.name} is {image.shape[1]} x {image.shape[0]}"
                )
            if self.labels is not None:
                self.labels.validate_mask(mask)
        return SegmentationSample(image=image, mask=mask, name=image_path.stem)
