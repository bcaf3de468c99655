"""``python -m analysis.bench video``: end-to-end video speed and streaming memory.

Speed: one :func:`analysis.video_run.run_video` over a SynthScapes drive clip (decode,
inference, flicker analysis for every method, both encodes and the ``.npz``), after two
warm-up frames; prints processed frames per second, the share of decoding + encoding, and
the CPU seconds per frame (user + system, all threads).
Targets (issue 21, lite model, 512 x 256, (0.5, 1, 2), 2 CPU cores): >= 5 frames/s and
decode + encode <= 15% of the time.

Memory (``--memory``): the same run on clips of ``--short`` and ``--long`` frames, each in a
fresh process, comparing the peak resident memory (``ru_maxrss``); target: the long clip at
most 50 MB above the short one.

Big model (``--checkpoint recipe``: the official HRNetV2-W48 + OCR with the golden fixtures'
deterministic weights, as :mod:`analysis.bench.official` loads them) with ``--image-memory``:
the clip run and, in another fresh process, one ``hmsa_core.infer`` of the clip's first frame
(same model, cascade and precision): peak resident memory of the clip against the image;
target (issue 21): the clip within the same bound as one image of that size. For example
``python -m analysis.bench video --checkpoint recipe --size 2048x1024 --frames 3 --scales 1
--warmup 0 --image-memory`` (a 1024 x 2048 clip; about 2.5 minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPEED_TARGET_FPS = 5.0
CODEC_SHARE_TARGET = 0.15
MEMORY_TARGET_MB = 50.0


def _size(text: str) -> tuple[int, int]:
    width, height = (int(v) for v in text.lower().split("x"))
    return height, width


def make_clip(folder: Path, frames: int, size: tuple[int, int]) -> Path:
    """Writes a drive clip of ``frames`` frames at ``size`` ``(H, W)``; returns its path."""
    from hmsa_core.data.drive import DriveSettings, write_drive

    clip, _ = write_drive(folder, DriveSettings(frames=frames, size=size), stem=f"drive_{frames}")
    return clip


def bench_model(model_name: str, checkpoint: str | None) -> object:
    """Returns the eval-mode model: the official architecture for a ``checkpoint``
    (``"recipe"`` or a file, :func:`analysis.bench.official.load_bench_model`), else the
    bundled or registered ``model_name``."""
    import torch

    import hmsa_core

    if checkpoint:
        from analysis.bench.official import load_bench_model

        return load_bench_model(checkpoint, torch.device("cpu"))
    return hmsa_core.load_model(model_name)


def run_once(
    clip: Path,
    out: Path,
    scales: tuple[float, ...],
    model_name: str,
    checkpoint: str | None = None,
    warmup: int = 2,
) -> dict:
    """Runs the clip (after a ``warmup``-frame run); returns timings, frames/s and peak RSS MB."""
    import resource

    import torch

    from analysis.video_run import VideoRunSettings, run_video

    model = bench_model(model_name, checkpoint)
    if warmup > 0:  # the second warm-up frame also loads the optical flow's imports
        settings = VideoRunSettings(scales=scales, max_frames=warmup)
        run_video(clip, out / "warmup", settings, model=model)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    summary = run_video(clip, out / "run", VideoRunSettings(scales=scales), model=model)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    t = summary.timings
    return {
        "frames": summary.frames,
        "seconds": wall,
        "fps": summary.frames / wall,
        "codec_share": (t["decode"] + t["encode"]) / t["total"],
        "cpu_seconds_per_frame": cpu / max(summary.frames, 1),
        "timings": t,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(),
    }


def image_once(
    clip: Path, scales: tuple[float, ...], model_name: str, checkpoint: str | None
) -> dict:
    """Runs the clip's first frame as one image through :func:`hmsa_core.infer` (the video
    run's precision, no cache); returns its seconds, size and peak RSS MB."""
    import resource

    import hmsa_core
    from analysis.video_run import VideoRunSettings
    from hmsa_core.video_io import VideoReader

    model = bench_model(model_name, checkpoint)
    with VideoReader(clip, max_frames=1) as reader:
        rgb = next(iter(reader)).rgb
    start = time.perf_counter()
    result = hmsa_core.infer(
        rgb, scales, model=model, cache=None, precision=VideoRunSettings().precision
    )
    return {
        "seconds": time.perf_counter() - start,
        "size": list(result.pred.shape),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _child(args: argparse.Namespace) -> int:
    scales = tuple(args.scales)
    if args.image_child:
        result = image_once(Path(args.child), scales, args.model, args.checkpoint)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            result = run_once(
                Path(args.child), Path(tmp), scales, args.model, args.checkpoint, args.warmup
            )
    print(json.dumps(result))
    return 0


def _in_process(clip: Path, args: argparse.Namespace, image: bool = False) -> dict:
    cmd = [sys.executable, "-m", "analysis.bench", "video", "--child", str(clip)]
    cmd += ["--model", args.model, "--scales", *[str(s) for s in args.scales]]
    cmd += ["--warmup", str(args.warmup)]
    if args.checkpoint:
        cmd += ["--checkpoint", args.checkpoint]
    if image:
        cmd += ["--image-child"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def size_text(size: tuple[int, int]) -> str:
    """Returns ``"W x H"`` of an ``(H, W)`` size (the video convention, as ``--size``)."""
    return f"{size[1]} x {size[0]}"


def _model_label(args: argparse.Namespace) -> str:
    return f"official architecture ({args.checkpoint} weights)" if args.checkpoint else args.model


def _print_speed(row: dict, size: tuple[int, int]) -> None:
    t = row["timings"]
    share = {k: t[k] / t["total"] for k in ("decode", "inference", "analysis", "outputs", "encode")}
    from analysis.video_run import VideoRunSettings

    threads = row["threads"]
    overlapped = size[0] * size[1] <= VideoRunSettings().overlap_max_pixels
    if not overlapped:
        split = "all for the passes, then the analysis: large frames are not overlapped"
    else:
        split = f"{max(1, threads - 1)} for the passes, 1 for the analysis worker"
    print(
        f"video {size_text(size)}, {row['frames']} frames, {threads} torch threads ({split}): "
        f"{row['fps']:.3g} frames/s end to end (target >= {SPEED_TARGET_FPS:g}: "
        f"{'met' if row['fps'] >= SPEED_TARGET_FPS else 'MISSED'}); decode + encode "
        f"{100 * row['codec_share']:.1f}% (target <= {100 * CODEC_SHARE_TARGET:.0f}%: "
        f"{'met' if row['codec_share'] <= CODEC_SHARE_TARGET else 'MISSED'})"
    )
    print(
        "  share of wall time: "
        + ", ".join(f"{k} {100 * v:.1f}%" for k, v in share.items())
        + (
            " (analysis, outputs and encoding run beside the next frame's decoding and inference)"
            if overlapped
            else ""
        )
    )
    print(
        f"  CPU time {row['cpu_seconds_per_frame']:.2f} s per frame (all threads; less sensitive "
        "than wall time to other jobs on the machine)"
    )


def main(argv: list[str] | None = None) -> int:
    """Runs the video benchmark; returns 0 (targets are reported, not enforced)."""
    parser = argparse.ArgumentParser(prog="python -m analysis.bench video", description=__doc__)
    parser.add_argument("--frames", type=int, default=50, help="frames of the speed clip")
    parser.add_argument("--size", type=_size, default=(256, 512), help="WIDTHxHEIGHT")
    parser.add_argument("--scales", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    parser.add_argument("--model", default="hmsa-lite")
    parser.add_argument("--memory", action="store_true", help="also compare peak memory")
    parser.add_argument("--short", type=int, default=30, help="frames of the short memory clip")
    parser.add_argument("--long", type=int, default=300, help="frames of the long memory clip")
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="run the official architecture instead of --model: 'recipe' (the golden "
        "fixtures' deterministic weights) or a checkpoint file",
    )
    parser.add_argument("--warmup", type=int, default=2, help="warm-up frames before timing")
    parser.add_argument(
        "--image-memory",
        action="store_true",
        help="also run the clip's first frame as one image through infer in a fresh process "
        "and compare its peak memory with the clip's",
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--image-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clip = make_clip(folder, args.frames, args.size)
        row = _in_process(clip, args)
        _print_speed(row, args.size)
        if args.image_memory:
            image = _in_process(clip, args, image=True)
            clip_mb, image_mb = row["peak_rss_mb"], image["peak_rss_mb"]
            print(
                f"peak memory, {_model_label(args)}, scales {tuple(args.scales)}: clip of "
                f"{row['frames']} frames {clip_mb:.0f} MB ({row['seconds']:.1f} s), one "
                f"{size_text(args.size)} image through infer {image_mb:.0f} MB "
                f"({image['seconds']:.1f} s): {clip_mb - image_mb:+.0f} MB "
                f"({clip_mb / image_mb:.2f}x)"
            )
        if args.memory:
            import os

            os.environ.setdefault("HMSA_MAX_VIDEO_FRAMES", str(max(args.long, 300)))
            rows = {
                n: _in_process(make_clip(folder, n, args.size), args)
                for n in (args.short, args.long)
            }
            short, long_ = rows[args.short]["peak_rss_mb"], rows[args.long]["peak_rss_mb"]
            print(
                f"peak memory: {args.short} frames {short:.0f} MB, {args.long} frames "
                f"{long_:.0f} MB: {long_ - short:+.0f} MB (target <= {MEMORY_TARGET_MB:g}: "
                f"{'met' if long_ - short <= MEMORY_TARGET_MB else 'MISSED'})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
