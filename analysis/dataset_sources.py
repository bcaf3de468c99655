"""Data sources of a dataset run: SynthScapes val N, a folder of images with masks, or a
Cityscapes layout, with what identifies each (for the run's storage key)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from hmsa_core.data.sample import SampleView, SegmentationSample
from hmsa_core.images import fit_max_side

#: The SynthScapes image sizes the page offers, ``(H, W)``.
SYNTH_SIZES: tuple[tuple[int, int], ...] = ((64, 128), (128, 256), (256, 512), (512, 1024))

DataKind = Literal["synthscapes", "folder", "cityscapes"]


class _Fitted(SampleView):
    """A dataset view whose images are shrunk to a maximum side (masks by nearest neighbour)."""

    def __init__(self, data: Sequence[SegmentationSample], max_side: int | None) -> None:
        self.data, self.max_side = data, max_side

    def __len__(self) -> int:
        return len(self.data)

    def _item(self, i: int) -> SegmentationSample:
        sample = self.data[i]
        image = fit_max_side(sample.image, self.max_side)
        if image.dtype != np.uint8:
            image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
        mask = sample.mask
        if mask is not None and mask.shape != image.shape[:2]:
            pil = Image.fromarray(np.asarray(mask, dtype=np.int32), mode="I")
            size = (int(image.shape[1]), int(image.shape[0]))
            mask = np.asarray(pil.resize(size, Image.Resampling.NEAREST)).astype(np.int64)
        return SegmentationSample(image, mask, sample.name)


@dataclass(frozen=True)
class DataSource:
    """Where a run's images come from.

    Attributes:
        kind: ``"synthscapes"`` (generated val scenes), ``"folder"`` (images with
            ``masks/<stem>.png`` or ``<stem>_mask.png``, see :mod:`hmsa_core.data.folders`) or
            ``"cityscapes"`` (the Cityscapes layout).
        location: the folder or Cityscapes root (unused for SynthScapes).
        count: SynthScapes scenes; for folders, the first ``count`` images (0 = all).
        size: ``(H, W)`` of SynthScapes scenes.
        split: the Cityscapes split.
        max_side: folder and Cityscapes images are shrunk so their longer side is at most
            this (0 keeps them).
    """

    kind: DataKind = "synthscapes"
    location: str = ""
    count: int = 8
    size: tuple[int, int] = (128, 256)
    split: str = "val"
    max_side: int = 1024

    def open(self) -> Sequence[SegmentationSample]:
        """Returns the samples (images ``(H, W, 3)`` uint8, masks ``(H, W)`` int64 or ``None``).

        Raises:
            ValueError: a bad count or size, a missing folder or an invalid layout.
        """
        if self.count < 0:
            raise ValueError(f"the image count must be 0 (all) or more, got {self.count}")
        if self.kind == "synthscapes":
            from hmsa_core.data.synthscapes import SynthScapes

            if self.count < 1:
                raise ValueError("pick at least one SynthScapes scene")
            return SynthScapes(split="val", length=self.count, size=self.size)
        if not self.location.strip():
            raise ValueError(f"give the {self.kind} folder's path")
        root = Path(self.location.strip()).expanduser()
        if not root.is_dir():
            raise ValueError(f"{root} is not a folder")
        data: Sequence[SegmentationSample]
        if self.kind == "folder":
            from hmsa_core.data.folders import ImageFolder

            data = ImageFolder(root)
        elif self.kind == "cityscapes":
            from hmsa_core.data.cityscapes import Cityscapes

            data = Cityscapes(root, self.split or "val")
        else:
            raise ValueError(f"unknown data kind {self.kind!r}: synthscapes, folder or cityscapes")
        return _Fitted(data, self.max_side or None)

    def limit(self) -> int | None:
        """Returns how many images a run scores (``None``: all)."""
        return self.count if self.kind == "synthscapes" or self.count > 0 else None

    def describe(self) -> str:
        """Returns a short human label, e.g. ``"SynthScapes val, 8 scenes at 128 x 256"``."""
        if self.kind == "synthscapes":
            return f"SynthScapes val, {self.count} scenes at {self.size[1]} x {self.size[0]}"
        first = f", first {self.count}" if self.count else ""
        what = "Cityscapes " + self.split if self.kind == "cityscapes" else "folder"
        return f"{what} {self.location}{first} (max side {self.max_side or 'unchanged'})"

    def identity(self) -> dict:
        """Returns what identifies the data: the settings, plus for a folder or Cityscapes root
        the name, size and modification time of every image and mask file the data set reads
        (editing, adding or removing one changes it; other files under the root do not count).
        An unreadable folder gets an empty listing (:meth:`open` says what is wrong)."""
        ident: dict = {
            "kind": self.kind,
            "count": self.count,
            "size": list(self.size) if self.kind == "synthscapes" else None,
            "split": self.split if self.kind == "cityscapes" else None,
            "max_side": self.max_side if self.kind != "synthscapes" else None,
        }
        if self.kind != "synthscapes":
            root = Path(self.location.strip()).expanduser().resolve()
            digest = hashlib.sha256()
            for path in self._files():
                try:
                    stat = path.stat()
                except OSError:
                    continue
                digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
            ident["location"] = str(root)
            ident["listing"] = digest.hexdigest()
        return ident

    def _files(self) -> list[Path]:
        """Returns the image and mask files the data set reads (empty when it cannot open)."""
        try:
            data = self.open()
        except ValueError:
            return []
        inner = data.data if isinstance(data, _Fitted) else data
        files: list[Path] = []
        for name in ("image_paths", "mask_paths", "label_paths"):
            files += [p for p in getattr(inner, name, []) if p is not None]
        return sorted(files)

    def to_dict(self) -> dict:
        """Returns the settings as JSON-ready data (see :meth:`from_dict`)."""
        return {
            "kind": self.kind,
            "location": self.location,
            "count": self.count,
            "size": list(self.size),
            "split": self.split,
            "max_side": self.max_side,
        }

    @classmethod
    def from_dict(cls, data: dict) -> DataSource:
        """Returns the source :meth:`to_dict` wrote.

        Raises:
            ValueError: a field of the wrong type.
        """
        try:
            kind = str(data["kind"])
            if kind not in ("synthscapes", "folder", "cityscapes"):
                raise ValueError(f"unknown data kind {kind!r}")
            size = tuple(int(v) for v in data["size"])
            if len(size) != 2:
                raise ValueError("size must be (H, W)")
            return cls(
                kind=kind,  # type: ignore[arg-type]
                location=str(data["location"]),
                count=int(data["count"]),
                size=(size[0], size[1]),
                split=str(data["split"]),
                max_side=int(data["max_side"]),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"unreadable data source: {exc}") from exc


def labelled_indices(data: Sequence[SegmentationSample], count: int) -> list[int]:
    """Returns the indices among the first ``count`` samples that have a mask (read from the
    file listing of a folder, without loading any image; every index otherwise)."""
    inner = data.data if isinstance(data, _Fitted) else data
    masks = getattr(inner, "mask_paths", None)
    if isinstance(masks, list):
        return [i for i in range(count) if masks[i] is not None]
    return list(range(count))
