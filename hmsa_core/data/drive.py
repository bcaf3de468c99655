"""SynthScapes drive: the camera moves forward through one generated street, frame by frame.

One street (layout, facades, objects) is generated from ``(seed, scene)`` with SynthScapes'
own layout, background renderer and object painters (imported, not copied); each frame moves
the camera ``speed / fps`` metres along the street (``camera_z``) and redraws, so every frame
has its exact class-id mask. Colours, texture offsets and each object's look are drawn from
fixed seeds, so they stay the same from frame to frame; only the sensor noise is new.

``python -m hmsa_core.data.drive --out assets/samples`` writes the bundled clip
``synthscapes_drive.mp4`` (5 s, 10 fps, 512 x 256) and its masks ``synthscapes_drive_masks.npz``
(members ``mask_<frame:05d>``, ``(H, W)`` uint8 trainIds), the pair :mod:`analysis.video_run`
reads.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from hmsa_core.data.sample import SegmentationSample

#: Stem of the bundled clip in ``assets/samples``.
DRIVE_STEM = "synthscapes_drive"
#: Objects nearer than this (metres, in front of the camera) are not drawn.
NEAR_PLANE = 2.0


@dataclass(frozen=True)
class DriveSettings:
    """One drive.

    Attributes:
        seed: dataset seed; ``scene``: the street's index (same meaning as in SynthScapes).
        size: ``(H, W)`` of the frames.
        frames: number of frames; ``fps``: frames per second.
        speed: camera speed in metres per second.
        noise: standard deviation of the per-frame sensor noise (0-255 scale).
    """

    seed: int = 0
    scene: int = 3
    size: tuple[int, int] = (256, 512)
    frames: int = 50
    fps: float = 10.0
    speed: float = 8.0
    noise: float = 2.5

    def __post_init__(self) -> None:
        """Raises ``ValueError`` for a size under 16 x 16, no frames or a non-positive rate."""
        if min(self.size) < 16:
            raise ValueError(f"drive frames must be at least 16 x 16, got {self.size}")
        if self.frames < 1 or self.fps <= 0 or self.speed < 0:
            raise ValueError("a drive needs frames >= 1, fps > 0 and speed >= 0")


def drive_frames(settings: DriveSettings | None = None) -> Iterator[SegmentationSample]:
    """Yields the drive's frames in order: image ``(H, W, 3)`` uint8 and mask ``(H, W)``
    int64 trainIds, named ``synthscapes/drive/<seed>-<scene>/<frame>`` (same settings, same
    frames)."""
    from hmsa_core.data import synthscapes as ss

    s = settings or DriveSettings()
    h, w = s.size
    rng = np.random.default_rng([s.seed, s.scene, 0xD41E])
    street = ss._layout(rng, (h, w))
    travel = s.speed * (s.frames - 1) / s.fps
    street = replace(street, z_end=max(street.z_end, travel + 60.0))
    objects = ss._objects(street, rng)
    painters = {"pole": ss._draw_pole, "person": ss._draw_person, "car": ss._draw_car}
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * (u / w - 0.5) + np.sin(angle) * (v / h - 0.5)
    light = rng.uniform(0.85, 1.1) * (1 + rng.uniform(0.1, 0.3) * ramp)
    background_seed = int(rng.integers(0, 2**31))
    for i in range(s.frames):
        camera_z = s.speed * i / s.fps
        img, mask = ss._render_background(
            street, np.random.default_rng(background_seed), (h, w), camera_z=camera_z
        )
        for k, (z, kind, x) in enumerate(objects):  # far to near, as the generator draws
            depth = z - camera_z
            if depth >= NEAR_PLANE:
                look = np.random.default_rng([s.seed, s.scene, k])
                painters[kind](img, mask, street, look, x, depth)
        noise = np.random.default_rng([s.seed, s.scene, i, 0x4015E]).normal(0, s.noise, (h, w, 1))
        image = np.clip(img * light[..., None] + noise.astype(np.float32), 0, 255).astype(np.uint8)
        yield SegmentationSample(
            image=image, mask=mask, name=f"synthscapes/drive/{s.seed}-{s.scene}/{i}"
        )


def write_drive(
    out_dir: str | Path, settings: DriveSettings | None = None, stem: str = DRIVE_STEM
) -> tuple[Path, Path]:
    """Writes ``<stem>.mp4`` (H.264) and ``<stem>_masks.npz`` into ``out_dir``; returns both
    paths. Each is written under a temporary name and renamed when complete."""
    import os
    import zipfile

    from hmsa_core.video_io import VideoWriter, partial_path

    s = settings or DriveSettings()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    clip, masks = out / f"{stem}.mp4", out / f"{stem}_masks.npz"
    with (
        VideoWriter(clip, s.fps, crf=26) as writer,
        zipfile.ZipFile(partial_path(masks), "w", zipfile.ZIP_DEFLATED) as archive,
    ):
        for i, sample in enumerate(drive_frames(s)):
            writer.write(sample.image, i / s.fps)
            entry = zipfile.ZipInfo(f"mask_{i:05d}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            entry.compress_type = zipfile.ZIP_DEFLATED  # fixed dates: the same bytes every time
            with archive.open(entry, "w") as f:
                np.lib.format.write_array(f, sample.mask.astype(np.uint8), allow_pickle=False)
    os.replace(partial_path(masks), masks)
    return clip, masks


def main(argv: list[str] | None = None) -> None:
    """``python -m hmsa_core.data.drive --out DIR``: writes the drive clip and its masks."""
    d = DriveSettings()
    parser = argparse.ArgumentParser(
        prog="python -m hmsa_core.data.drive",
        description="Write the SynthScapes drive clip (.mp4) and its per-frame masks (.npz).",
    )
    parser.add_argument("--out", default="assets/samples", help="output folder")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--scene", type=int, default=d.scene, help="street index")
    parser.add_argument("--frames", type=int, default=d.frames)
    parser.add_argument("--fps", type=float, default=d.fps)
    parser.add_argument("--speed", type=float, default=d.speed, help="metres per second")
    parser.add_argument("--size", default=f"{d.size[1]}x{d.size[0]}", help="WIDTHxHEIGHT")
    parser.add_argument("--stem", default=DRIVE_STEM, help="output file stem")
    args = parser.parse_args(argv)
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        parser.error(f"--size must look like 512x256, got {args.size!r}")
    settings = DriveSettings(
        seed=args.seed,
        scene=args.scene,
        size=(height, width),
        frames=args.frames,
        fps=args.fps,
        speed=args.speed,
    )
    clip, masks = write_drive(args.out, settings, args.stem)
    print(f"wrote {clip} and {masks}")


if __name__ == "__main__":
    main()
