"""The README's reproduction table: the paper's claims in miniature, from two sweeps.

Run the two sweeps (commands in README.md), then::

    python -m analysis.reproduction --hmsa results/hmsa_lite_sweep.csv \
        --explicit results/explicit_lite_sweep.csv

prints the table (rows: single scales, mean, max, explicit, HMSA cascades; columns: mIoU,
inference GFLOPs and seconds per image, and the per-training-step GFLOPs, peak memory and
seconds of the model behind each row, measured now with :func:`compare_recipes`) and checks
each claim of the issue against it.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from analysis.sweep import SweepRow, SweepTable
from hmsa_core.api import load_model
from hmsa_core.train.cost import RecipeComparison, StepCost, compare_recipes

LARGE_CLASSES = ("road", "sidewalk", "building", "wall", "vegetation", "terrain", "sky")
THIN_CLASSES = ("pole", "traffic sign", "person")


@dataclass(frozen=True)
class TableRow:
    """One row of the reproduction table.

    Attributes:
        name: what the row is, e.g. ``"HMSA (0.5, 1, 2)"``.
        sweep: the sweep row it comes from.
        training: the per-step training cost of the model that produced it.
    """

    name: str
    sweep: SweepRow
    training: StepCost


def _cascade_text(cascade: Sequence[float]) -> str:
    return "(" + ", ".join(f"{s:g}" for s in cascade) + ")"


def table_rows(hmsa: SweepTable, explicit: SweepTable, cost: RecipeComparison) -> list[TableRow]:
    """Returns the rows of the table, in the issue's order; ``KeyError`` if a sweep lacks one."""
    full = (0.5, 1.0, 2.0)
    rows = [TableRow(f"single {s:g}", hmsa.row((s,), "hierarchical"), cost.hmsa) for s in full]
    rows += [
        TableRow(f"mean {_cascade_text(full)}", hmsa.row(full, "mean"), cost.hmsa),
        TableRow(f"max {_cascade_text(full)}", hmsa.row(full, "max"), cost.hmsa),
        TableRow(f"explicit {_cascade_text(full)}", explicit.row(full, "explicit"), cost.explicit),
    ]
    rows += [
        TableRow(f"HMSA {_cascade_text(c)}", hmsa.row(c, "hierarchical"), cost.hmsa)
        for c in ((0.5, 1.0), full, (0.25, 0.5, 1.0, 2.0))
    ]
    return rows


def to_markdown(rows: Sequence[TableRow], num_images: int) -> str:
    """Returns the table as markdown (mIoU in %)."""
    lines = [
        f"| row ({num_images} SynthScapes val images, 512 x 1024) | mIoU | inference GFLOPs "
        "| inference s / image | training GFLOP / step | training peak MiB | training s / step |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        t = r.training
        lines.append(
            f"| {r.name} | {100 * r.sweep.miou:.1f} | {r.sweep.gflops:.1f} | {r.sweep.seconds:.2f} "
            f"| {t.flops / 1e9:.1f} | {t.peak_bytes / 2**20:.0f} | {t.seconds:.2f} |"
        )
    return "\n".join(lines)


def per_class_markdown(rows: Sequence[TableRow], classes: Sequence[str]) -> str:
    """Returns the per-class IoU (%) of every row as markdown."""
    lines = [
        "| row | " + " | ".join(classes) + " |",
        "|---|" + "---:|" * len(classes),
    ]
    for r in rows:
        cells = [r.sweep.per_class_iou.get(c, math.nan) for c in classes]
        lines.append(f"| {r.name} | " + " | ".join(f"{100 * v:.1f}" for v in cells) + " |")
    return "\n".join(lines)


@dataclass(frozen=True)
class Claim:
    """One claim of the reproduction and whether the table supports it."""

    text: str
    holds: bool
    evidence: str


def check_claims(rows: Sequence[TableRow], cost: RecipeComparison) -> list[Claim]:
    """Returns each claim with its verdict, computed from the table (nothing hard-coded)."""
    by = {r.name: r.sweep for r in rows}
    s05, s1, s2 = by["single 0.5"], by["single 1"], by["single 2"]
    large = [c for c in LARGE_CLASSES if s05.per_class_iou.get(c, 0) > s1.per_class_iou.get(c, 0)]
    thin = [
        c
        for c in THIN_CLASSES
        if max(s1.per_class_iou.get(c, 0), s2.per_class_iou.get(c, 0)) > s05.per_class_iou.get(c, 0)
    ]
    hmsa = by["HMSA (0.5, 1, 2)"]
    rivals = ["single 0.5", "single 1", "single 2", "mean (0.5, 1, 2)", "max (0.5, 1, 2)"]
    best_rival = max(rivals, key=lambda n: by[n].miou)
    pair = by["HMSA (0.5, 1)"].miou
    generalised = max(hmsa.miou, by["HMSA (0.25, 0.5, 1, 2)"].miou)
    return [
        Claim(
            "scale 0.5 beats 1.0 on at least two large-region classes",
            len(large) >= 2,
            ", ".join(large) or "none",
        ),
        Claim(
            "1.0 or 2.0 beats 0.5 on at least two thin classes",
            len(thin) >= 2,
            ", ".join(thin) or "none",
        ),
        Claim(
            "HMSA (0.5, 1, 2) beats every single scale, mean and max",
            hmsa.miou > by[best_rival].miou,
            f"{100 * hmsa.miou:.1f} vs best other {best_rival} {100 * by[best_rival].miou:.1f}",
        ),
        Claim(
            "HMSA generalises beyond its training pair (0.5, 1)",
            generalised >= pair,
            f"best of (0.5, 1, 2) and (0.25, 0.5, 1, 2): {100 * generalised:.1f} vs (0.5, 1) "
            f"{100 * pair:.1f}",
        ),
        Claim(
            "explicit attention costs about 4x HMSA per training step",
            3.0 <= cost.flop_ratio <= 5.0,
            f"FLOPs {cost.flop_ratio:.2f}x, memory {cost.memory_ratio:.2f}x, "
            f"time {cost.time_ratio:.2f}x; explicit mIoU {100 * by['explicit (0.5, 1, 2)'].miou:.1f}",
        ),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: prints the table, the per-class table and the claims; returns 1 if a claim fails."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hmsa", type=Path, required=True, help="sweep CSV of the HMSA model")
    parser.add_argument("--explicit", type=Path, required=True, help="sweep CSV of explicit-lite")
    parser.add_argument("--model", default="hmsa-lite", help="the HMSA model (for its label set)")
    parser.add_argument("--crop", default="192x384", help="training crop HxW for the step cost")
    parser.add_argument("--batch", type=int, default=8, help="training batch for the step cost")
    args = parser.parse_args(argv)
    model = load_model(args.model, device="cpu")
    labels = model.labels
    hmsa = SweepTable.from_csv(args.hmsa, labels)
    explicit = SweepTable.from_csv(args.explicit, labels)
    h, w = (int(v) for v in args.crop.lower().split("x"))
    cost = compare_recipes(model.hparams(), (h, w), args.batch)
    rows = table_rows(hmsa, explicit, cost)
    print(to_markdown(rows, hmsa.num_images))
    print()
    classes = [c for c in labels.names if any(c in r.sweep.per_class_iou for r in rows)]
    print(per_class_markdown(rows, classes))
    print()
    print(cost.describe())
    print()
    claims = check_claims(rows, cost)
    for claim in claims:
        print(f"{'OK  ' if claim.holds else 'FAIL'} {claim.text}: {claim.evidence}")
    return 0 if all(c.holds for c in claims) else 1


if __name__ == "__main__":
    sys.exit(main())
