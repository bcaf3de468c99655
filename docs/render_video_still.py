"""Renders docs/video_still.png: one frame of a video run's overlay and deciding-scale videos,
side by side, over a strip naming each scale's colour.

    hmsa segment assets/samples/synthscapes_drive.mp4 --scales 0.5 1 2 --out results/video
    python docs/render_video_still.py results/video/synthscapes_drive --frame 25
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from analysis.video_outputs import scale_colours  # noqa: E402
from hmsa_core.video_io import VideoReader  # noqa: E402


def frame_of(path: Path, number: int) -> np.ndarray:
    """Returns decoded frame ``number`` of the clip at ``path`` as ``(H, W, 3)`` uint8."""
    with VideoReader(path) as reader:
        for i, frame in enumerate(reader):
            if i == number:
                return frame.rgb
    raise ValueError(f"{path} has no frame {number}")


def main(argv: list[str] | None = None) -> None:
    """Writes the still (default docs/video_still.png)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "prefix", help="output prefix of a run, e.g. results/video/synthscapes_drive"
    )
    parser.add_argument("--frame", type=int, default=25)
    parser.add_argument("--scales", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "video_still.png"))
    args = parser.parse_args(argv)
    overlay = frame_of(Path(f"{args.prefix}_overlay.mp4"), args.frame)
    deciding = frame_of(Path(f"{args.prefix}_scales.mp4"), args.frame)
    top = np.concatenate([overlay, np.full((overlay.shape[0], 8, 3), 255, np.uint8), deciding], 1)
    strip = Image.new("RGB", (top.shape[1], 28), "white")
    draw = ImageDraw.Draw(strip)
    draw.text((6, 8), f"frame {args.frame}: overlay | scale deciding each pixel:", fill="black")
    x = overlay.shape[1] + 14
    for colour, scale in zip(scale_colours(len(args.scales)), args.scales):
        draw.rectangle([x, 7, x + 14, 21], fill=tuple(int(c) for c in colour))
        draw.text((x + 18, 8), f"{scale:g}", fill="black")
        x += 60
    image = np.concatenate([top, np.asarray(strip)], 0)
    Image.fromarray(image).save(args.out, optimize=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
