"""Video inference: a clip is a sequence of images through :func:`hmsa_core.infer` (DESIGN 1.9).

``infer_video`` streams: it decodes one frame, runs the cascade on it, yields the result and
drops it, so memory does not grow with the clip. Each yielded :class:`VideoFrameResult` is an
:class:`~hmsa_core.inference.InferenceResult` that also knows its frame index and timestamp::

    for r in hmsa_core.infer_video("drive.mp4", (0.5, 1, 2)):
        print(r.frame_index, r.time, r.pred.shape)
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, fields

import numpy as np

from hmsa_core.inference import InferenceResult
from hmsa_core.video_io import (
    Frame,
    VideoInfo,
    VideoReader,
    VideoSource,
    frames_from_arrays,
    shrunk_size,
    video_limits_from_env,
)


@dataclass(repr=False)
class VideoFrameResult(InferenceResult):
    """An :class:`InferenceResult` of one video frame.

    Attributes:
        frame_index: the frame's index in the decoded clip (0-based, before ``every``).
        time: its presentation time in seconds from the clip start.
    """

    frame_index: int = 0
    time: float = 0.0

    @classmethod
    def of(cls, result: InferenceResult, frame: Frame) -> VideoFrameResult:
        """Returns ``result`` (same tensors, not copied) tagged with ``frame``'s index and time."""
        values = {f.name: getattr(result, f.name) for f in fields(result) if f.init}
        return cls(**values, frame_index=frame.index, time=frame.time)


class VideoInference:
    """The frames of one clip and their results, produced lazily while iterating (once).

    Attributes:
        info: the clip's :class:`~hmsa_core.video_io.VideoInfo` (for frames given as arrays:
            the first frame's size, ``fps`` and count); ``rotation`` and the upright size are
            known once the first frame is decoded.
        notices: plain-language notes on what was changed or cut (shrunk, frame cap reached,
            truncated file, rotation applied); complete once iteration ends.
        expected_frames: how many frames iteration should yield (``None`` when the container
            does not say).
        timings: seconds spent so far decoding (``"decode"``) and in ``infer``
            (``"inference"``).
    """

    def __init__(
        self,
        frames: Iterator[Frame],
        infer: Callable[[np.ndarray], InferenceResult],
        *,
        reader: VideoReader | None = None,
        info: VideoInfo | None = None,
        notices: list[str] | None = None,
        expected_frames: int | None = None,
    ) -> None:
        """Wraps decoded ``frames`` and the per-frame ``infer``; use :func:`infer_video`."""
        self._frames = frames
        self._infer = infer
        self._reader = reader
        self._info = info
        self.notices: list[str] = (
            reader.notices if reader is not None else (notices if notices is not None else [])
        )
        self.expected_frames = expected_frames
        self.timings: dict[str, float] = {"decode": 0.0, "inference": 0.0}
        self._used = False

    @property
    def info(self) -> VideoInfo:
        """Returns the clip's :class:`~hmsa_core.video_io.VideoInfo`."""
        return self._reader.info if self._reader is not None else self._info  # type: ignore[return-value]

    def __iter__(self) -> Iterator[VideoFrameResult]:
        """Yields one :class:`VideoFrameResult` per processed frame, in order."""
        if self._used:
            raise ValueError("a VideoInference can be iterated once; call infer_video again")
        self._used = True
        clock = time.perf_counter
        try:
            while True:
                start = clock()
                frame = next(self._frames, None)
                self.timings["decode"] += clock() - start
                if frame is None:
                    return
                start = clock()
                result = VideoFrameResult.of(self._infer(frame.rgb), frame)
                self.timings["inference"] += clock() - start
                yield result
                # not kept while the next frame is decoded and inferred (a second result)
                del result, frame
        finally:
            self.close()

    def close(self) -> None:
        """Releases the decoder (iterating to the end, or stopping it, does it already)."""
        if self._reader is not None:
            self._reader.close()


def _array_frames(
    frames: Iterable[np.ndarray], fps: float, every: int, max_frames: int, max_side: int | None
) -> tuple[VideoInfo, Iterator[Frame], list[str], int | None]:
    """Returns ``(info, frames, notices, expected count)`` of RGB arrays; a list is counted,
    any other iterable (e.g. a generator) is consumed lazily, one frame at a time."""
    from PIL import Image

    sized = isinstance(frames, (list, tuple))
    stream = iter(frames)
    first_item = next(stream, None)
    if first_item is None:
        raise ValueError("no frames were given; give a video file or a list of RGB arrays")
    first = np.asarray(first_item)
    if first.ndim != 3 or first.shape[2] != 3:
        raise ValueError(f"frames must be (H, W, 3) RGB arrays, got shape {first.shape}")
    h, w = first.shape[:2]
    nw, nh = shrunk_size(w, h, max_side)
    notices: list[str] = []
    if (nw, nh) != (w, h):
        notices.append(f"frames of {w} x {h} were shrunk to {nw} x {nh} (maximum side {max_side})")
    total = len(frames) if sized else None  # type: ignore[arg-type]

    def gen() -> Iterator[Frame]:
        kept = itertools.islice(itertools.chain([first_item], stream), 0, None, every)
        for n, f in enumerate(frames_from_arrays(kept, fps / every)):
            if n >= max_frames:
                notices.append(
                    "the clip is longer than the frame cap: only its first "
                    f"{max_frames} processed frame(s) were used"
                )
                return
            rgb = f.rgb
            if (nw, nh) != (w, h):
                rgb = np.asarray(Image.fromarray(rgb).resize((nw, nh), Image.BILINEAR))
            yield Frame(index=f.index * every, time=f.time, rgb=rgb)

    duration = None if total is None else total / fps
    info = VideoInfo("<frames>", nw, nh, float(fps), total, duration, 0, "raw")
    expected = None if total is None else min(-(-total // every), max_frames)
    return info, gen(), notices, expected


def infer_video(
    path_or_frames: VideoSource | Iterable[np.ndarray],
    scales: Iterable[float] | str = (0.5, 1.0, 2.0),
    *,
    model: object | None = None,
    method: str = "hierarchical",
    every: int = 1,
    max_frames: int | None = None,
    max_side: int | None = None,
    fps: float = 10.0,
    device: str | None = None,
    cache: object | None = None,
    **options: object,
) -> VideoInference:
    """Returns a :class:`VideoInference` that yields one :class:`VideoFrameResult` per
    processed frame (streaming: one frame in memory at a time).

    Args:
        path_or_frames: a video path, its bytes or a binary file object (any format FFmpeg
            reads: MP4, WebM, MOV, AVI...), or an iterable of ``(H, W, 3)`` RGB arrays.
        scales: the cascade, as in :func:`hmsa_core.infer`.
        model: a loaded model; ``None`` loads the bundled default once.
        method: the merge method, as in :func:`hmsa_core.infer`.
        every: process one frame in ``every``.
        max_frames: most frames processed; never above ``HMSA_MAX_VIDEO_FRAMES`` (default
            300): a longer clip is processed up to the cap, with a notice.
        max_side: shrink larger frames to this long side (default ``HMSA_MAX_VIDEO_SIDE``, 2048).
        fps: frame rate of frames given as arrays (a file's own timestamps are kept).
        device: where to load the default model.
        cache: the per-scale cache; ``None`` (default for video: frames never repeat).
        **options: passed to :func:`hmsa_core.infer` (``precision``, ``gate``, ``return_attn``,
            ``limits``, ``fast_path``, ``aux``, ...).

    Raises:
        ValueError: an unreadable file, no video stream, bad ``every``/``max_frames``, or bad
            inference options (checked on the first frame); a clip without frames raises when
            iterated.
    """
    from hmsa_core.api import default_model, infer
    from hmsa_core.cascade import parse_scales

    if every < 1:
        raise ValueError(f"every must be a positive integer, got {every}")
    limits = video_limits_from_env()
    cap = limits.max_frames if max_frames is None else min(int(max_frames), limits.max_frames)
    if cap < 1:
        raise ValueError(f"max_frames must be positive, got {max_frames}")
    side = limits.max_side if max_side is None else int(max_side)
    if model is None:
        model = default_model(device)
    cascade = parse_scales(scales) if isinstance(scales, str) else tuple(scales)

    def run(rgb: np.ndarray) -> InferenceResult:
        return infer(rgb, cascade, model=model, method=method, cache=cache, **options)

    if isinstance(path_or_frames, (str, bytes, bytearray, os.PathLike)) or hasattr(
        path_or_frames, "read"
    ):
        reader = VideoReader(path_or_frames, every=every, max_frames=max_frames, max_side=side)  # type: ignore[arg-type]
        return VideoInference(
            iter(reader), run, reader=reader, expected_frames=reader.expected_frames()
        )
    info, frames, notices, count = _array_frames(path_or_frames, fps, every, cap, side)  # type: ignore[arg-type]
    return VideoInference(frames, run, info=info, notices=notices, expected_frames=count)
