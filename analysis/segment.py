"""``hmsa segment``: segment image files and folders, writing one set of outputs per image.

For every image: ``<name>.png`` (indexed mask PNG: pixel values are class ids, the palette is
the label colours), ``<name>.npz`` (per-scale attention and effective weights, the prediction;
logits with ``--logits``; see :func:`analysis.exports.arrays_npz_bytes`) and ``<name>.json``
(metrics: model, cascade, GFLOPs, seconds; mIoU and per-class IoU when a mask is paired).
Masks are paired as in :mod:`hmsa_core.data.folders` (``masks/<stem>.png`` or
``<stem>_mask.png``). A file that cannot be read or segmented is reported and skipped; the
others still finish, and the exit code is 1 when any failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from analysis.cli_args import add_scales_argument, with_example
from analysis.compare import compare_methods
from analysis.exports import arrays_npz_bytes, mask_png_bytes, metrics_json
from analysis.video_segment import add_video_arguments, is_video, segment_videos
from hmsa_core.data.folders import IMAGE_EXTENSIONS, IMAGES_DIR, MASK_SUFFIX, find_mask, list_images


@dataclass(frozen=True)
class Job:
    """One image to segment.

    Attributes:
        image: the image file.
        mask: its paired class-id mask, or ``None``.
        name: the stem of its output files (unique within the run).
    """

    image: Path
    mask: Path | None
    name: str


def collect_jobs(inputs: list[str]) -> list[Job]:
    """Returns one :class:`Job` per image named or found in a named folder (a folder's images
    sorted by name, its ``images/`` subfolder used when present), masks paired.

    Output names are the image stems, made unique with ``-2``, ``-3``... on a clash.

    Raises:
        ValueError: an input that does not exist, or a folder without images.
    """
    jobs: list[Job] = []
    used: set[str] = set()

    def add(image: Path, mask: Path | None) -> None:
        name, k = image.stem, 1
        while name in used:
            k += 1
            name = f"{image.stem}-{k}"
        used.add(name)
        jobs.append(Job(image, mask, name))

    for text in inputs:
        path = Path(text)
        if path.is_dir():
            image_dir = path / IMAGES_DIR if (path / IMAGES_DIR).is_dir() else path
            images = list_images(image_dir)
            if not images:
                raise ValueError(
                    f"no images ({', '.join(IMAGE_EXTENSIONS)}) in folder {path}; "
                    "give image files or a folder holding them"
                )
            for image in images:
                add(image, find_mask(image, path))
        elif path.is_file():
            if path.stem.endswith(MASK_SUFFIX):
                continue  # a mask given with its image (e.g. by a shell glob) is not an image
            add(path, find_mask(path, path.parent))
        else:
            raise ValueError(f"{path} does not exist; give image files or folders")
    if not jobs:
        raise ValueError("no images to segment (only masks were given)")
    return jobs


def segment_one(job: Job, args: argparse.Namespace, model: object, out: Path) -> dict:
    """Segments one image, writes its PNG, NPZ and JSON into ``out``; returns its metrics dict.

    Raises:
        ValueError: an unreadable image or mask, or a mask of another size.
    """
    import hmsa_core

    result = hmsa_core.infer(
        job.image, args.scales, model=model, method=args.method, cache=None, flip=args.flip
    )
    comparison = compare_methods(result, [args.method], gt=job.mask, model=model)
    metrics = json.loads(metrics_json(comparison))  # NaN already written as null
    metrics["image"] = str(job.image)
    metrics["mask"] = None if job.mask is None else str(job.mask)
    metrics["per_scale"] = [
        {
            "scale": c.scale,
            "input_size": list(c.input_size),
            "gflops": c.gflops,
            "seconds": c.seconds,
            "precision": c.precision,
            "computed_fraction": c.computed_fraction,
            "flipped": c.flipped,
        }
        for c in result.cost.per_scale
    ]
    (out / f"{job.name}.png").write_bytes(mask_png_bytes(result))
    (out / f"{job.name}.npz").write_bytes(arrays_npz_bytes(result, include_logits=args.logits))
    (out / f"{job.name}.json").write_text(
        json.dumps(metrics, indent=2, allow_nan=False), encoding="utf-8"
    )
    return metrics


def build_parser(prog: str = "hmsa segment") -> argparse.ArgumentParser:
    """Returns the argument parser of ``hmsa segment``."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Segment images (files or folders): a mask PNG, per-scale maps (.npz) and "
        "metrics JSON per image; masks beside the images (masks/<stem>.png or <stem>_mask.png) "
        "add mIoU. Video clips (.mp4, .webm, .mov...): overlay and deciding-scale videos, "
        "per-frame .npz and a JSON summary with flicker (<stem>_masks.npz beside a clip adds "
        "mIoU).",
    )
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER", help="images or folders")
    add_scales_argument(parser)
    parser.add_argument(
        "--method",
        default="hierarchical",
        help="merge method: hierarchical, mean, max, explicit or single:<s>",
    )
    parser.add_argument(
        "--model", default=None, help="bundled name or checkpoint path (default: hmsa-lite)"
    )
    parser.add_argument("--out", default="segmented", help="output folder (created)")
    parser.add_argument("--logits", action="store_true", help="also store logits in the .npz")
    parser.add_argument(
        "--flip",
        action="store_true",
        help="also run every scale on the mirrored image and average the two merges",
    )
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_video_arguments(parser)
    return with_example(
        parser,
        "hmsa segment assets/samples --scales 0.5 1 2 --method hierarchical --out segmented",
        "hmsa segment street.jpg other.png --scales 0.25,0.5,1,2 --model hmsa-lite --out out",
        "hmsa segment assets/samples/synthscapes_drive.mp4 --scales 0.5 1 2 --out drive",
    )


def main(argv: list[str] | None = None) -> int:
    """Runs ``hmsa segment``; returns 0 when every image was written, 1 when any failed, 2 on
    bad arguments."""
    args = build_parser().parse_args(argv)
    try:
        import hmsa_core
        from hmsa_core.merge import parse_method

        parse_method(args.method)
        clips = [p for p in args.inputs if is_video(p)]
        images = [p for p in args.inputs if not is_video(p)]
        jobs = collect_jobs(images) if images else []
        model = hmsa_core.load_model(args.model, args.device)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # video clips: overlay and deciding-scale videos, .npz, JSON (analysis.video_segment)
    video_code = segment_videos(clips, args, model) if clips else 0
    if not jobs:
        return video_code
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failed: list[str] = []
    bar = tqdm(jobs, desc="segment", unit="image", disable=args.no_progress or len(jobs) < 2)
    for job in bar:
        try:
            metrics = segment_one(job, args, model, out)
        except (ValueError, OSError) as exc:
            failed.append(str(job.image))
            tqdm.write(f"error: {job.image}: {exc}", file=sys.stderr)
            continue
        score = metrics["methods"].get(args.method, {}).get("miou")
        bar.set_postfix_str(f"{job.name}" + ("" if score is None else f" mIoU {100 * score:.1f}"))
    done = len(jobs) - len(failed)
    print(
        f"wrote {done} of {len(jobs)} image(s) to {out}"
        + (f"; {len(failed)} failed" if failed else "")
    )
    return 1 if failed or video_code else 0


if __name__ == "__main__":
    sys.exit(main())
