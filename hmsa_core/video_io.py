"""Video decoding and encoding with PyAV (the FFmpeg libraries inside its wheel).

Streaming both ways: :class:`VideoReader` yields one :class:`Frame` at a time (RGB, timestamp,
rotation metadata applied, shrunk to a maximum side, a frame cap), and
:class:`~hmsa_core.video_write.VideoWriter` (re-exported here) encodes H.264 MP4 one frame at
a time, under a temporary name renamed only when the file is complete.

Limits come from the environment (:func:`video_limits_from_env`): ``HMSA_MAX_VIDEO_FRAMES``
(default 300: a clip longer than that is processed up to the cap, with a notice) and
``HMSA_MAX_VIDEO_SIDE`` (default 2048: larger frames, e.g. 4K, are shrunk to it).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hmsa_core.limits import env_number
from hmsa_core.video_write import ClosesOnExit, VideoWriter, pad_even, partial_path

__all__ = [
    "Frame",
    "VideoInfo",
    "VideoLimits",
    "VideoReader",
    "VideoWriter",
    "frames_from_arrays",
    "pad_even",
    "partial_path",
    "probe_video",
    "shrunk_size",
    "upright",
    "video_limits_from_env",
]

#: What a video can be given as: a path, encoded bytes, or a binary file object.
VideoSource = str | os.PathLike | bytes | io.IOBase

DEFAULT_MAX_VIDEO_FRAMES = 300
DEFAULT_MAX_VIDEO_SIDE = 2048
#: Largest declared frame area accepted before decoding (a guard against hostile headers).
MAX_DECLARED_PIXELS = 8192 * 8192


@dataclass(frozen=True)
class VideoLimits:
    """Bounds on video input.

    Attributes:
        max_frames: most frames processed from one clip; a longer clip is processed up to
            it, with a notice. Env ``HMSA_MAX_VIDEO_FRAMES``.
        max_side: frames whose long side is larger are shrunk to it. Env ``HMSA_MAX_VIDEO_SIDE``.
    """

    max_frames: int = DEFAULT_MAX_VIDEO_FRAMES
    max_side: int = DEFAULT_MAX_VIDEO_SIDE


def video_limits_from_env() -> VideoLimits:
    """Returns :class:`VideoLimits` with ``HMSA_MAX_VIDEO_FRAMES`` / ``HMSA_MAX_VIDEO_SIDE``
    overrides.

    Raises:
        ValueError: a variable that is not a positive integer.
    """
    base = VideoLimits()
    return VideoLimits(
        max_frames=int(env_number("HMSA_MAX_VIDEO_FRAMES", base.max_frames)),
        max_side=int(env_number("HMSA_MAX_VIDEO_SIDE", base.max_side)),
    )


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a clip's video stream.

    Attributes:
        name: the file name (``"<bytes>"`` for in-memory input).
        width: display width in pixels (after rotation, before any shrinking).
        height: display height in pixels.
        fps: average frame rate (frames per second; 0 when unknown).
        frames: frame count the container declares (``None`` when it does not say).
        duration: seconds (``None`` when unknown).
        rotation: degrees counter-clockwise the display matrix rotates the frames.
        codec: the video codec name, e.g. ``"h264"``.
    """

    name: str
    width: int
    height: int
    fps: float
    frames: int | None
    duration: float | None
    rotation: int
    codec: str


@dataclass(frozen=True)
class Frame:
    """One decoded frame.

    Attributes:
        index: the frame's position in the decoded stream (0-based, before ``every``).
        time: presentation time in seconds from the stream start.
        rgb: ``(H, W, 3)`` uint8 RGB, rotated upright and shrunk to the maximum side.
    """

    index: int
    time: float
    rgb: np.ndarray


def _source_name(source: VideoSource) -> str:
    if isinstance(source, (str, os.PathLike)):
        return Path(source).name
    return "<bytes>"


def _open(source: VideoSource):
    """Returns an opened PyAV input container; raises ``ValueError`` when it cannot be read."""
    import av

    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise ValueError("the video is empty (0 bytes); give an MP4, WebM, MOV or AVI clip")
        source = io.BytesIO(bytes(source))
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"{path} does not exist; give a video file (MP4, WebM, MOV, AVI)")
        if path.stat().st_size == 0:
            raise ValueError(f"{path.name} is empty (0 bytes); give an MP4, WebM, MOV or AVI clip")
        source = str(path)
    try:
        return av.open(source, mode="r")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise ValueError(
            f"{_source_name(source)} is not a readable video (not a video file, or truncated: "
            f"{exc}); give a complete MP4, WebM, MOV or AVI clip"
        ) from exc


def _info(container, name: str) -> VideoInfo:
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams})
        if not kinds:
            raise ValueError(
                f"{name} holds no streams and no frames (an empty or unfinished file); give a "
                "clip with video frames"
            )
        raise ValueError(
            f"{name} has no video stream (it holds: {', '.join(kinds)}); give a clip with video"
        )
    stream = container.streams.video[0]
    width, height = int(stream.codec_context.width), int(stream.codec_context.height)
    if width <= 0 or height <= 0:
        raise ValueError(f"{name}: the video stream declares no frame size; it cannot be decoded")
    if width * height > MAX_DECLARED_PIXELS:
        raise ValueError(
            f"{name}: frames of {width} x {height} are too large (limit {MAX_DECLARED_PIXELS:,} "
            "pixels); shrink the clip first"
        )
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    duration = None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / 1_000_000
    return VideoInfo(
        name=name,
        width=width,
        height=height,
        fps=float(rate) if rate else 0.0,
        frames=int(stream.frames) if stream.frames else None,
        duration=duration,
        rotation=0,
        codec=stream.codec_context.name,
    )


def probe_video(source: VideoSource) -> VideoInfo:
    """Returns the :class:`VideoInfo` of a clip, decoding only its first frame (for the
    rotation and the upright size).

    Raises:
        ValueError: not a video, truncated beyond reading, no video stream, no frames.
    """
    with VideoReader(source, max_frames=1) as reader:
        next(iter(reader), None)
        return reader.info


def upright(rgb: np.ndarray, rotation: int) -> np.ndarray:
    """Returns ``(H', W', 3)``: ``rgb`` rotated counter-clockwise by ``rotation`` degrees
    (rounded to a quarter turn), as a display matrix asks."""
    turns = round(rotation / 90.0) % 4
    return np.ascontiguousarray(np.rot90(rgb, k=turns)) if turns else rgb


def shrunk_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """Returns ``(width, height)`` scaled so the long side is at most ``max_side`` (same
    aspect, at least 1 pixel; unchanged when it already fits or ``max_side`` is ``None``)."""
    if max_side is None or max(width, height) <= max_side:
        return width, height
    f = max_side / max(width, height)
    return max(1, round(width * f)), max(1, round(height * f))


@dataclass
class VideoReader(ClosesOnExit):
    """Streams the frames of a clip: ``with VideoReader(path) as r: for frame in r: ...``.

    Attributes:
        source: path, bytes or binary file object.
        every: keep one frame in ``every`` (1: all).
        max_frames: most frames to yield (``None``: ``HMSA_MAX_VIDEO_FRAMES``); a longer
            clip stops there with a notice.
        max_side: shrink frames whose long side is larger (``None``: ``HMSA_MAX_VIDEO_SIDE``).
        info: the clip's :class:`VideoInfo` (``rotation`` is set once a frame is decoded).
        notices: plain-language notes on what was changed or cut (shrunk, capped, truncated).

    Raises:
        ValueError: on opening, a file that is not a readable video or has no video stream;
            on iterating, a clip that yields no frame at all.
    """

    source: VideoSource
    every: int = 1
    max_frames: int | None = None
    max_side: int | None = None
    info: VideoInfo = field(init=False)
    notices: list[str] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"every must be a positive integer, got {self.every}")
        limits = video_limits_from_env()
        cap = limits.max_frames
        self.cap_is_env = self.max_frames is None or self.max_frames > cap
        self.max_frames = cap if self.max_frames is None else min(int(self.max_frames), cap)
        if self.max_frames < 1:
            raise ValueError(f"max_frames must be positive, got {self.max_frames}")
        self.max_side = limits.max_side if self.max_side is None else int(self.max_side)
        self._container = _open(self.source)
        try:
            self.info = _info(self._container, _source_name(self.source))
        except ValueError:
            self._container.close()
            raise
        self._stopped_early = False

    def close(self) -> None:
        """Closes the container (safe to call twice)."""
        self._container.close()

    def expected_frames(self) -> int | None:
        """Returns how many frames iterating will yield, from the declared count (``None``
        when the container does not declare one)."""
        if not self.info.frames:
            return None
        return min(-(-self.info.frames // self.every), int(self.max_frames or 0))

    def _decoded(self) -> Iterator:
        import av

        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            yield from self._container.decode(stream)
        except (av.error.FFmpegError, EOFError) as exc:
            self._stopped_early = True
            self._decode_error = str(exc)

    def __iter__(self) -> Iterator[Frame]:
        """Yields :class:`Frame` s in presentation order; see the class docstring."""
        yielded = index = 0
        size_note = capped = False
        first_time: float | None = None
        for av_frame in self._decoded():
            if index % self.every:
                index += 1
                continue
            if yielded >= int(self.max_frames or 0):
                self.notices.append(self._cap_notice())
                capped = True
                break
            rotation = int(av_frame.rotation or 0)
            if yielded == 0:
                self._set_rotation(rotation)
            width, height = shrunk_size(av_frame.width, av_frame.height, self.max_side)
            if (width, height) != (av_frame.width, av_frame.height) and not size_note:
                size_note = True
                self.notices.append(
                    f"frames of {av_frame.width} x {av_frame.height} were shrunk to "
                    f"{width} x {height} (maximum side {self.max_side})"
                )
            rgb = av_frame.to_ndarray(format="rgb24", width=width, height=height)
            t = float(av_frame.time) if av_frame.time is not None else index / (self.info.fps or 1)
            first_time = t if first_time is None else first_time
            yield Frame(index=index, time=t - first_time, rgb=upright(rgb, rotation))
            yielded += 1
            index += 1
        if self._stopped_early:
            if yielded == 0:
                raise ValueError(
                    f"{self.info.name}: no frame could be decoded ({self._decode_error}); the "
                    "file is truncated or damaged"
                )
            self.notices.append(
                f"decoding stopped after {yielded} frame(s): {self._decode_error} (the file is "
                "truncated or damaged); the frames before it were processed"
            )
        elif yielded == 0:
            raise ValueError(f"{self.info.name} holds no video frames; give a clip with frames")
        elif capped is False and self.info.frames and index < self.info.frames:
            self.notices.append(
                f"the file declares {self.info.frames} frames but only {index} could be decoded "
                "(it is truncated or damaged); the frames decoded were processed"
            )

    def _cap_notice(self) -> str:
        source = "HMSA_MAX_VIDEO_FRAMES" if self.cap_is_env else "max_frames"
        return (
            f"the clip is longer than the frame cap: only its first {self.max_frames} processed "
            f"frame(s) were used ({source}={self.max_frames})"
        )

    def _set_rotation(self, rotation: int) -> None:
        info = self.info
        turned = round(rotation / 90.0) % 2 == 1
        width, height = (info.height, info.width) if turned else (info.width, info.height)
        self.info = VideoInfo(
            name=info.name,
            width=width,
            height=height,
            fps=info.fps,
            frames=info.frames,
            duration=info.duration,
            rotation=rotation,
            codec=info.codec,
        )
        if rotation % 360:
            self.notices.append(f"rotation metadata of {rotation} degrees was applied")


def frames_from_arrays(frames: object, fps: float = 10.0) -> Iterator[Frame]:
    """Yields :class:`Frame` s of an iterable of ``(H, W, 3)`` uint8 arrays at ``fps``.

    Raises:
        ValueError: an item that is not an ``(H, W, 3)`` array, or ``fps <= 0``.
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    for i, item in enumerate(frames):  # type: ignore[attr-defined]
        rgb = np.asarray(item)
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"frame {i} must be an (H, W, 3) RGB array, got shape {rgb.shape}")
        if rgb.dtype != np.uint8:
            rgb = np.clip(rgb * (255.0 if rgb.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
        yield Frame(index=i, time=i / fps, rgb=rgb)
