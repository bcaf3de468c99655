"""H.264 MP4 writing with PyAV: one frame at a time, under a temporary name.

:class:`VideoWriter` encodes ``yuv420p`` H.264 with ``+faststart`` (it plays in browsers),
pads odd sizes to even, keeps each frame's timestamp (variable frame rate survives), and
writes ``<stem>.partial.mp4``, renamed only when the file is complete.
"""

from __future__ import annotations

import contextlib
import os
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import numpy as np

#: Timestamps of written frames are stored in milliseconds.
WRITE_TIME_BASE = Fraction(1, 1000)


def pad_even(rgb: np.ndarray) -> np.ndarray:
    """Returns ``rgb`` ``(H, W, 3)`` padded by one edge-replicated row/column where ``H``/``W``
    is odd (H.264 in ``yuv420p`` needs even sizes)."""
    h, w = rgb.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return rgb
    return np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def partial_path(path: Path) -> Path:
    """Returns the temporary name a file is written under until it is complete."""
    return path.with_name(f"{path.stem}.partial{path.suffix}")


_Closing = TypeVar("_Closing", bound="ClosesOnExit")


class ClosesOnExit:
    """The ``with`` protocol of the video reader and writer: leaving the block normally calls
    ``close()``, leaving it by an exception ``abort()`` (which is ``close()`` unless a
    subclass has something to throw away)."""

    def close(self) -> object:  # pragma: no cover - every subclass overrides it
        """Finishes and releases the file."""
        raise NotImplementedError

    def abort(self) -> None:
        """Releases the file after a failure; returns nothing."""
        self.close()

    def __enter__(self: _Closing) -> _Closing:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class VideoWriter(ClosesOnExit):
    """Encodes RGB frames to an H.264 MP4 that browsers play, one frame at a time.

    Written to ``<stem>.partial.mp4`` and renamed to ``path`` by :meth:`close`; :meth:`abort`
    (or leaving a ``with`` block by an exception) removes the partial file, so a cancelled
    run never leaves a half-written file under the finished name.
    """

    def __init__(self, path: str | os.PathLike, fps: float = 10.0, crf: int = 23) -> None:
        """Prepares the writer (nothing is created before the first frame).

        Raises:
            ValueError: ``fps <= 0``.
        """
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.path = Path(path)
        self.fps = fps
        self.crf = crf
        self.frames = 0
        self._container = None
        self._stream = None
        self._size: tuple[int, int] | None = None
        self._last_pts = -1

    def _start(self, height: int, width: int) -> None:
        import av

        self._container = av.open(
            str(partial_path(self.path)),
            mode="w",
            format="mp4",
            options={"movflags": "+faststart"},
        )
        stream = self._container.add_stream(
            "libx264", rate=Fraction(self.fps).limit_denominator(1001)
        )
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = WRITE_TIME_BASE
        stream.codec_context.time_base = WRITE_TIME_BASE
        stream.options = {"preset": "veryfast", "crf": str(self.crf)}
        self._stream = stream
        self._size = (height, width)

    def write(self, rgb: np.ndarray, time: float | None = None) -> None:
        """Encodes one ``(H, W, 3)`` uint8 frame shown at ``time`` seconds (default: the next
        slot at ``fps``); later frames must have the first one's size.

        Raises:
            ValueError: a wrongly shaped frame, or a size change.
        """
        import av

        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"a video frame must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
        rgb = pad_even(rgb)
        if self._container is None:
            self._start(*rgb.shape[:2])
        if rgb.shape[:2] != self._size:
            raise ValueError(f"frame size changed from {self._size} to {rgb.shape[:2]}")
        pts = round((self.frames / self.fps if time is None else time) / WRITE_TIME_BASE)
        pts = max(pts, self._last_pts + 1)
        self._last_pts = pts
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts, frame.time_base = pts, WRITE_TIME_BASE
        for packet in self._stream.encode(frame):  # type: ignore[union-attr]
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> Path | None:
        """Finishes the file and renames it to its final name; returns that path (``None``
        when no frame was written: nothing is created)."""
        if self._container is None:
            return None
        for packet in self._stream.encode():  # type: ignore[union-attr]
            self._container.mux(packet)
        self._container.close()
        self._container = None
        os.replace(partial_path(self.path), self.path)
        return self.path

    def abort(self) -> None:
        """Stops writing and removes the partial file."""
        if self._container is not None:
            with contextlib.suppress(Exception):  # the file is being thrown away
                self._container.close()
            self._container = None
        partial_path(self.path).unlink(missing_ok=True)
