"""The one form every dataset yields."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class SegmentationSample:
    """One labelled image.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB.
        mask: ``(H, W)`` int64 class ids (trainIds), 255 = ignore; ``None`` when unlabelled.
        name: a stable identifier (file stem or ``synthscapes/<split>/<index>``).
    """

    image: np.ndarray
    mask: np.ndarray | None
    name: str
