"""Scoring trained models on SynthScapes val: many cascades and merges from one pass per scale.

``python -m hmsa_core.train.evaluate --model assets/models/hmsa_lite_synthscapes.safetensors
--explicit assets/models/explicit_lite_synthscapes.safetensors --images 100`` prints the table of
per-class IoU for single scales, mean, max, HMSA cascades and explicit attention, and checks
the claims of the reproduction (DESIGN 3).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from analysis.metrics import ConfusionMatrix, SegmentationScores
from hmsa_core.data.sample import SegmentationSample
from hmsa_core.inference import run_scales
from hmsa_core.merge import merge
from hmsa_core.models.base import MultiScaleSegmenter

#: (row name, cascade, method) of the reproduction table for an HMSA model.
HMSA_ROWS: tuple[tuple[str, tuple[float, ...], str], ...] = (
    ("single 0.5", (0.5, 1.0, 2.0), "single:0.5"),
    ("single 1.0", (0.5, 1.0, 2.0), "single:1.0"),
    ("single 2.0", (0.5, 1.0, 2.0), "single:2.0"),
    ("mean (0.5, 1, 2)", (0.5, 1.0, 2.0), "mean"),
    ("max (0.5, 1, 2)", (0.5, 1.0, 2.0), "max"),
    ("HMSA (0.5, 1)", (0.5, 1.0), "hierarchical"),
    ("HMSA (0.5, 1, 2)", (0.5, 1.0, 2.0), "hierarchical"),
    ("HMSA (0.25, 0.5, 1, 2)", (0.25, 0.5, 1.0, 2.0), "hierarchical"),
)
EXPLICIT_ROW = ("explicit (0.5, 1, 2)", (0.5, 1.0, 2.0), "explicit")


@dataclass(frozen=True)
class RowScores:
    """One evaluated row.

    Attributes:
        name: row name.
        cascade: the scales merged.
        method: the merge method.
        scores: confusion-matrix scores over the whole set.
    """

    name: str
    cascade: tuple[float, ...]
    method: str
    scores: SegmentationScores


def evaluate_rows(
    model: MultiScaleSegmenter,
    samples: Iterable[SegmentationSample],
    rows: Sequence[tuple[str, tuple[float, ...], str]],
    progress: bool = False,
) -> list[RowScores]:
    """Returns each row's scores over ``samples``: one forward pass per distinct scale per image.

    Every row's cascade is merged from the same per-scale outputs with its method.
    """
    scales = sorted({s for _, cascade, _ in rows for s in cascade})
    matrices = [ConfusionMatrix(model.num_classes) for _ in rows]
    items = list(samples) if progress else samples
    for sample in tqdm(items, desc="eval", disable=not progress):
        rgb = torch.from_numpy(sample.image).permute(2, 0, 1).float().div(255).unsqueeze(0)
        x = model.normalize(rgb)
        per_scale = run_scales(model, x, scales)
        size = tuple(sample.image.shape[:2])
        for (_, cascade, method), cm in zip(rows, matrices):
            with torch.no_grad():
                merged = merge(
                    {s: per_scale[s] for s in cascade}, method, output_size=size, model=model
                )
            cm.update(merged.logits[0].argmax(0), sample.mask)
    return [RowScores(n, c, m, cm.scores()) for (n, c, m), cm in zip(rows, matrices)]


def format_table(rows: Sequence[RowScores], class_names: Sequence[str]) -> str:
    """Returns a markdown table: mIoU and per-class IoU (%) of every row."""
    present = np.zeros(len(class_names), dtype=bool)
    for r in rows:
        present |= r.scores.gt_pixels > 0
    cols = [i for i in range(len(class_names)) if present[i]]
    head = "| row | mIoU | " + " | ".join(class_names[i] for i in cols) + " |"
    lines = [head, "|" + "---|" * (len(cols) + 2)]
    for r in rows:
        cells = " | ".join(f"{100 * r.scores.iou[i]:.1f}" for i in cols)
        lines.append(f"| {r.name} | {100 * r.scores.miou:.1f} | {cells} |")
    return "\n".join(lines)


def check_claims(rows: Sequence[RowScores], class_names: Sequence[str]) -> dict[str, bool]:
    """Returns whether each claim of the reproduction holds on these rows (by row name)."""
    by = {r.name: r.scores for r in rows}
    idx = {n: i for i, n in enumerate(class_names)}
    large = [
        idx[n] for n in ("road", "sidewalk", "building", "wall", "vegetation", "terrain", "sky")
    ]
    thin = [idx[n] for n in ("pole", "traffic sign", "person")]
    s05, s1, s2 = by["single 0.5"].iou, by["single 1.0"].iou, by["single 2.0"].iou
    hmsa = by["HMSA (0.5, 1, 2)"].miou
    others = ["single 0.5", "single 1.0", "single 2.0", "mean (0.5, 1, 2)", "max (0.5, 1, 2)"]
    return {
        "0.5 beats 1.0 on >= 2 large classes": int(sum(s05[i] > s1[i] for i in large)) >= 2,
        "1.0 or 2.0 beats 0.5 on >= 2 thin classes": int(
            sum(max(s1[i], s2[i]) > s05[i] for i in thin)
        )
        >= 2,
        "HMSA (0.5,1,2) beats single scales, mean and max": all(hmsa > by[o].miou for o in others),
        "HMSA generalises beyond (0.5, 1)": max(hmsa, by["HMSA (0.25, 0.5, 1, 2)"].miou)
        >= by["HMSA (0.5, 1)"].miou,
    }


def main(argv: list[str] | None = None) -> None:
    """CLI: evaluate the bundled (or given) models on SynthScapes val and print the table."""
    from hmsa_core.api import load_model
    from hmsa_core.data.synthscapes import SynthScapes

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="hmsa-lite", help="'' to skip")
    parser.add_argument("--explicit", default="explicit-lite", help="'' to skip")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--size", default="512x1024")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="write the scores here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    h, w = (int(v) for v in args.size.split("x"))
    data = SynthScapes("val", args.images, (h, w))
    start = time.perf_counter()
    rows: list[RowScores] = []
    labels = None
    if args.model:
        model = load_model(args.model, "cpu")
        labels = model.labels
        rows += evaluate_rows(model, data, HMSA_ROWS, progress=True)
    if args.explicit:
        explicit = load_model(args.explicit, "cpu")
        labels = explicit.labels
        rows += evaluate_rows(explicit, data, [EXPLICIT_ROW], progress=True)
    if labels is None:
        parser.error("nothing to evaluate: give --model and/or --explicit")
    names = list(labels.names)
    print(format_table(rows, names))
    claims = check_claims(rows, names) if args.model else {}
    for claim, ok in claims.items():
        print(f"{'OK  ' if ok else 'FAIL'} {claim}")
    print(f"evaluated {len(data)} images in {time.perf_counter() - start:.0f} s")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "rows": {r.name: r.scores.as_dict(labels) for r in rows},
                    "claims": claims,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
