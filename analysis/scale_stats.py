"""Per-class scale preference: which scale decides the pixels of each class.

For every class, the mean effective weight (DESIGN 1.2) of each scale over the pixels of that
class (ground truth when given, else the prediction). Thin things should lean to high scales,
large regions to low ones. Over a dataset the means are pixel-weighted (sums over images).

Command line::

    python -m analysis.scale_stats --data synthscapes:val:16 --scales 0.5,1,2

``--by size|boundary|distance`` runs the where-analysis instead (:mod:`analysis.where_cli`):
object recall by size or camera distance, scores near boundaries, per method and single scale.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import torch
from tqdm import tqdm

from analysis.cli_args import add_scales_argument, with_example
from hmsa_core.data.sample import SegmentationSample
from hmsa_core.inference import InferenceResult, infer_prepared, prepare_input
from hmsa_core.labels import LabelSet
from hmsa_core.models.base import MultiScaleSegmenter


@dataclass(frozen=True)
class ScalePreference:
    """Mean effective weight of each scale over the pixels of each class.

    Attributes:
        scales: the cascade, ascending ``(S,)``.
        class_ids: the ``(K,)`` class ids that have at least one pixel.
        class_names: their names.
        weights: ``(K, S)`` mean effective weight of each scale over each class's pixels; each
            row sums to 1.
        pixels: ``(K,)`` pixels of each class the means were taken over.
        source: ``"ground truth"`` or ``"prediction"`` (which class map chose the pixels).
        num_images: images accumulated.
    """

    scales: tuple[float, ...]
    class_ids: tuple[int, ...]
    class_names: tuple[str, ...]
    weights: np.ndarray
    pixels: np.ndarray
    source: str = "prediction"
    num_images: int = 1

    @property
    def preferred_scale(self) -> np.ndarray:
        """Returns ``(K,)`` the weighted geometric mean scale of each class: ``2 ** sum_s w_s log2 s``
        (above 1: the class leans to high scales)."""
        return np.exp2(self.weights @ np.log2(np.asarray(self.scales, dtype=np.float64)))

    def to_markdown(self) -> str:
        """Returns a markdown table: class, pixels, mean weight (%) per scale, preferred scale;
        rows sorted from the class leaning most to high scales to the one leaning most to low."""
        header = ["class", "pixels", *(f"w@{s:g} (%)" for s in self.scales), "preferred scale"]
        lines = [
            f"Mean effective weight of each scale over the {self.source} pixels of each class "
            f"({self.num_images} image(s)).",
            "",
            "| " + " | ".join(header) + " |",
            "|---|" + "|".join(["---:"] * (len(header) - 1)) + "|",
        ]
        preferred = self.preferred_scale
        for k in np.argsort(-preferred, kind="stable"):
            cells = [
                self.class_names[k],
                f"{int(self.pixels[k]):,}",
                *(f"{100.0 * v:.1f}" for v in self.weights[k]),
                f"{preferred[k]:.2f}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"


def _as_numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def weight_sums(
    weights: dict[float, np.ndarray], class_map: np.ndarray, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``(sums (C, S), pixels (C,))``: per class, the sum of each scale's ``(H, W)`` weight
    over its pixels, and its pixel count. Ids outside ``[0, C)`` (ignore) are skipped."""
    ids = np.asarray(class_map, dtype=np.int64).ravel()
    keep = (ids >= 0) & (ids < num_classes)
    ids = ids[keep]
    scales = sorted(weights)
    sums = np.zeros((num_classes, len(scales)), dtype=np.float64)
    for j, s in enumerate(scales):
        w = np.asarray(weights[s], dtype=np.float64).ravel()[keep]
        sums[:, j] = np.bincount(ids, weights=w, minlength=num_classes)
    pixels = np.bincount(ids, minlength=num_classes).astype(np.int64)
    return sums, pixels


def preference_from_sums(
    scales: Sequence[float],
    sums: np.ndarray,
    pixels: np.ndarray,
    labels: LabelSet,
    source: str,
    num_images: int,
) -> ScalePreference:
    """Returns the :class:`ScalePreference` of per-class weight sums ``(C, S)`` and counts ``(C,)``."""
    ids = tuple(int(c) for c in np.flatnonzero(pixels > 0))
    rows = sums[list(ids)] / pixels[list(ids), None] if ids else np.zeros((0, len(scales)))
    return ScalePreference(
        scales=tuple(float(s) for s in scales),
        class_ids=ids,
        class_names=tuple(labels.names[c] for c in ids),
        weights=rows,
        pixels=pixels[list(ids)].astype(np.int64),
        source=source,
        num_images=num_images,
    )


def scale_preference(result: InferenceResult, mask: np.ndarray | None = None) -> ScalePreference:
    """Returns the :class:`ScalePreference` of one result: per class, the mean of each scale's
    effective weight ``result.weights`` over that class's pixels.

    Args:
        result: an inference result kept with its weights (``return_attn=True``).
        mask: ``(H, W)`` ground truth (255 ignored); ``None`` uses the prediction.

    Raises:
        ValueError: the result has no weight maps, or the mask's size or ids are wrong.
    """
    if not result.weights:
        raise ValueError("the result holds no effective weights: run infer with return_attn=True")
    if mask is not None:
        class_map = _as_numpy(mask)
        if class_map.shape != result.size:
            raise ValueError(
                f"mask is {class_map.shape[1]} x {class_map.shape[0]} but the image is "
                f"{result.size[1]} x {result.size[0]}"
            )
        result.labels.validate_mask(class_map)
        source = "ground truth"
    else:
        class_map = _as_numpy(result.pred)
        source = "prediction"
    weights = {s: _as_numpy(w) for s, w in result.weights.items()}
    sums, pixels = weight_sums(weights, class_map, result.labels.num_classes)
    return preference_from_sums(sorted(weights), sums, pixels, result.labels, source, 1)


def accumulate(prefs: Iterable[ScalePreference], labels: LabelSet) -> ScalePreference:
    """Returns the pixel-weighted combination of several preferences over the same cascade.

    Raises:
        ValueError: no preference given, or cascades or sources that differ.
    """
    prefs = list(prefs)
    if not prefs:
        raise ValueError("nothing to accumulate: no scale preference given")
    scales, source = prefs[0].scales, prefs[0].source
    sums = np.zeros((labels.num_classes, len(scales)), dtype=np.float64)
    pixels = np.zeros(labels.num_classes, dtype=np.int64)
    for pref in prefs:
        if pref.scales != scales or pref.source != source:
            raise ValueError("cannot accumulate preferences of different cascades or sources")
        ids = list(pref.class_ids)
        sums[ids] += pref.weights * pref.pixels[:, None]
        pixels[ids] += pref.pixels
    images = sum(p.num_images for p in prefs)
    return preference_from_sums(scales, sums, pixels, labels, source, images)


def dataset_scale_preference(
    model: MultiScaleSegmenter,
    samples: Sequence[SegmentationSample],
    scales: Iterable[float],
    *,
    max_images: int | None = None,
    use_ground_truth: bool = True,
    progress: bool = False,
) -> ScalePreference:
    """Returns the :class:`ScalePreference` of ``model`` over a dataset (pixel-weighted).

    Each image runs once per scale (no cache) and is merged hierarchically; pixels are chosen by
    the ground truth when ``use_ground_truth`` and the sample has a mask, else by the prediction.

    Raises:
        ValueError: an empty dataset, a bad cascade, or a mask whose size differs from its image.
    """
    total = len(samples) if max_images is None else min(len(samples), int(max_images))
    if total < 1:
        raise ValueError("no image to measure: the dataset is empty (or max_images < 1)")
    cascade = tuple(scales)
    prefs = []
    for i in tqdm(
        range(total), desc="scale preference", unit="img", disable=not progress, file=sys.stderr
    ):
        sample = samples[i]
        if use_ground_truth and sample.mask is None:
            continue  # unlabelled image: its pixels cannot be chosen by ground truth
        prepared = prepare_input(sample.image, model)
        result = infer_prepared(prepared, cascade, model, cache=None)
        prefs.append(scale_preference(result, sample.mask if use_ground_truth else None))
    if not prefs:
        raise ValueError(
            "no labelled image: use use_ground_truth=False (--predicted) for unlabelled data"
        )
    return accumulate(prefs, model.labels)


def scale_preference_figure(pref: ScalePreference) -> go.Figure:
    """Returns a heatmap of classes (rows, sorted from high-scale to low-scale leaning) x scales
    (columns) of the mean effective weight, with the values written in the cells."""
    order = (
        np.argsort(-pref.preferred_scale, kind="stable") if pref.class_ids else np.array([], int)
    )
    z = pref.weights[order] if len(order) else np.zeros((0, len(pref.scales)))
    names = [pref.class_names[k] for k in order]
    x = [f"{s:g}" for s in pref.scales]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=x,
            y=names,
            zmin=0.0,
            zmax=1.0,
            colorscale="Viridis",
            text=np.round(z * 100).astype(int).astype(str) if len(order) else None,
            texttemplate="%{text}%",
            customdata=np.repeat(pref.pixels[order, None], len(x), axis=1) if len(order) else None,
            hovertemplate="%{y} @ scale %{x}: %{z:.3f}<br>%{customdata:,} pixels<extra></extra>",
            colorbar={"title": "mean weight"},
        )
    )
    fig.update_layout(
        title=f"which scale decides each class ({pref.source} pixels, {pref.num_images} image(s))",
        xaxis={"title": "scale", "type": "category"},
        yaxis={"title": "class", "autorange": "reversed", "type": "category"},
        height=max(300, 40 + 28 * len(names) + 80),
        margin={"l": 110, "r": 10, "t": 50, "b": 50},
    )
    return fig


def _open(spec: str) -> Sequence[SegmentationSample]:
    try:
        from hmsa_core.data.open import open_dataset
    except ImportError:  # pragma: no cover - before the dataset opener existed
        from hmsa_core.data.synthscapes import SynthScapes

        parts = spec.split(":")
        return SynthScapes(
            split=parts[1] if len(parts) > 1 else "val",
            length=int(parts[2]) if len(parts) > 2 else 16,
        )
    return open_dataset(spec)


def build_parser() -> argparse.ArgumentParser:
    """Returns the argument parser of ``python -m analysis.scale_stats``."""
    parser = argparse.ArgumentParser(
        prog="python -m analysis.scale_stats",
        description="Per-class mean effective weight of each scale (which scale decides each class).",
    )
    parser.add_argument(
        "--data",
        default="synthscapes:val:16",
        help="dataset spec (see hmsa_core.data.open_dataset)",
    )
    add_scales_argument(parser)
    parser.add_argument(
        "--model", default=None, help="bundled name or checkpoint path (default: hmsa-lite)"
    )
    parser.add_argument("--max-images", type=int, default=None, help="use at most N images")
    parser.add_argument(
        "--predicted", action="store_true", help="choose pixels by prediction, not ground truth"
    )
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument(
        "--html", default=None, help="also write the heatmap figure to this HTML file"
    )
    parser.add_argument(
        "--by",
        default="class",
        choices=BY_CHOICES,
        help="class: this per-class table; size, boundary, distance: the where-analysis "
        "(python -m analysis.where_cli --help lists its options)",
    )
    parser.add_argument("--json", default=None, metavar="FILE", help="write the numbers here")
    return with_example(
        parser, "python -m analysis.scale_stats --data synthscapes:val:32 --scales 0.5 1 2"
    )


BY_CHOICES = ("class", "size", "boundary", "distance")


def preference_dict(pref: ScalePreference) -> dict:
    """Returns the JSON-able numbers of a preference: per class, pixels, each scale's mean
    weight and the preferred scale."""
    return {
        "by": "class",
        "source": pref.source,
        "num_images": pref.num_images,
        "scales": list(pref.scales),
        "classes": {
            name: {
                "pixels": int(pref.pixels[k]),
                "weights": {f"{s:g}": float(pref.weights[k, j]) for j, s in enumerate(pref.scales)},
                "preferred_scale": float(pref.preferred_scale[k]),
            }
            for k, name in enumerate(pref.class_names)
        },
    }


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; prints the markdown table; returns the exit code (2 on bad input).

    ``--by size|boundary|distance`` hands every argument to :func:`analysis.where_cli.main`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--by", default="class")
    known, _ = pre.parse_known_args(argv)
    if known.by != "class" and known.by in BY_CHOICES:
        from analysis.where_cli import main as where_main

        return where_main(argv, prog="hmsa scale-stats")
    args = build_parser().parse_args(argv)
    try:
        import hmsa_core

        scales = args.scales
        model = hmsa_core.load_model(args.model, args.device)
        samples = _open(args.data)
        pref = dataset_scale_preference(
            model, samples, scales, max_images=args.max_images,
            use_ground_truth=not args.predicted, progress=True,
        )  # fmt: skip
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(pref.to_markdown(), end="")
    if args.json:
        import json

        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(preference_dict(pref), indent=1), encoding="utf-8")
        print(f"wrote {args.json}")
    if args.html:
        scale_preference_figure(pref).write_html(args.html, include_plotlyjs=True)
        print(f"wrote {args.html}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
