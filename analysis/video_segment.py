"""``hmsa segment clip.mp4 --out DIR``: the video branch of :mod:`analysis.segment`.

Each clip gets the outputs of :mod:`analysis.video_run` (overlay and deciding-scale MP4s,
per-frame ``.npz``, JSON summary) with a tqdm bar over its frames; masks are paired as
``<stem>_masks.npz`` beside the clip. The flicker table is printed at the end.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

#: File suffixes taken as video by ``hmsa segment``.
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi")


def is_video(path: str) -> bool:
    """Returns whether ``path`` names a file with a video suffix (:data:`VIDEO_EXTENSIONS`)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def add_video_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the video options (``--every``, ``--max-frames``, ``--max-side``, ``--flow``)."""
    group = parser.add_argument_group("video (clips: .mp4, .webm, .mov, ...)")
    group.add_argument("--every", type=int, default=1, help="process one frame in N")
    group.add_argument(
        "--max-frames",
        type=int,
        default=None,
        help="most frames per clip (capped by HMSA_MAX_VIDEO_FRAMES, default 300)",
    )
    group.add_argument(
        "--max-side", type=int, default=None, help="shrink larger frames (default 2048)"
    )
    group.add_argument(
        "--flow",
        choices=("ilk", "tvl1", "none"),
        default="ilk",
        help="optical flow of the motion-compensated flicker (skimage.registration)",
    )


def segment_videos(clips: list[str], args: argparse.Namespace, model: object) -> int:
    """Runs every clip in ``clips`` into ``args.out``; returns 0 when all were written, 1
    when any failed (each failure printed)."""
    from analysis.temporal import TemporalSettings, table_markdown
    from analysis.video_run import VideoRun, VideoRunSettings

    settings = VideoRunSettings(
        scales=tuple(args.scales),
        method=args.method,
        every=args.every,
        max_frames=args.max_frames,
        max_side=args.max_side,
        temporal=TemporalSettings(flow=args.flow),
    )
    failed = 0
    for clip in clips:
        try:
            run = VideoRun(clip, args.out, settings, model=model)
            bar = tqdm(
                total=run.expected_frames,
                desc=Path(clip).name,
                unit="frame",
                disable=args.no_progress,
            )
            with bar:
                for stats in run.frames():
                    bar.update(1)
                    hmsa = stats.flicker.get(args.method)
                    if hmsa is not None:
                        bar.set_postfix_str(f"flicker {100 * hmsa:.2f}%")
        except (ValueError, OSError) as exc:
            failed += 1
            print(f"error: {clip}: {exc}", file=sys.stderr)
            continue
        summary = run.summary
        assert summary is not None
        for notice in summary.notices:
            print(f"note: {notice}")
        print(table_markdown(summary.table))
        print(
            f"wrote {summary.frames} frame(s) of {clip} to {args.out} "
            f"({summary.frames_per_second:.2f} frames/s): "
            + ", ".join(p.name for p in summary.files.values())
        )
    return 1 if failed else 0
