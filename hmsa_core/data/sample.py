"""The one form every dataset yields."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np


@dataclass
class SegmentationSample:
    """One labelled image.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB.
        mask: ``(H, W)`` int64 class ids (trainIds), 255 = ignore; ``None`` when unlabelled.
        name: a stable identifier (file stem or ``synthscapes/<split>/<index>``).
        instances: ``(H, W)`` int32 instance ids (0 = no instance) where the data has them
            (SynthScapes, Cityscapes ``*_instanceIds.png``), else ``None``.
        object_distance: instance id -> camera distance in metres (SynthScapes), else ``None``.
    """

    image: np.ndarray
    mask: np.ndarray | None
    name: str
    instances: np.ndarray | None = None
    object_distance: dict[int, float] | None = None


class SampleView(Sequence[SegmentationSample]):
    """A read-only sequence of samples made one index at a time: subclasses implement
    ``__len__`` and :meth:`_item` (called with an index in ``0 .. len - 1``); negative indices
    count from the end, slices return lists, and an index out of range is an ``IndexError``."""

    @overload
    def __getitem__(self, i: int) -> SegmentationSample: ...

    @overload
    def __getitem__(self, i: slice) -> list[SegmentationSample]: ...

    def __getitem__(self, i: int | slice) -> SegmentationSample | list[SegmentationSample]:
        """Returns the sample at ``i`` (a list of samples for a slice)."""
        if isinstance(i, slice):
            return [self._item(j) for j in range(*i.indices(len(self)))]
        count = len(self)
        index = i + count if i < 0 else i
        if not 0 <= index < count:
            raise IndexError(f"sample {i} out of range for {count} samples")
        return self._item(index)

    def _item(self, i: int) -> SegmentationSample:  # pragma: no cover - abstract
        raise NotImplementedError
