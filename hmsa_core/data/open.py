"""Opening a dataset from a short text spec (the ``--data`` flag of the sweep and training)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hmsa_core.data.sample import SegmentationSample

SYNTH_PREFIX = "synthscapes"
CITYSCAPES_PREFIX = "cityscapes:"
SYNTH_SPLITS = ("train", "val")
DEFAULT_SYNTH_LENGTH = 100

SPEC_HELP = (
    "give 'synthscapes[:split[:N]]' (e.g. 'synthscapes:val:32'), "
    "'cityscapes:<root>[:split]', or a folder of images with masks/<stem>.png or <stem>_mask.png"
)


def _open_synthscapes(spec: str) -> Sequence[SegmentationSample]:
    parts = spec.split(":")
    if parts[0] != SYNTH_PREFIX or len(parts) > 3:
        raise ValueError(f"bad SynthScapes spec {spec!r}; {SPEC_HELP}")
    split = parts[1] if len(parts) > 1 and parts[1] else "val"
    if split not in SYNTH_SPLITS:
        raise ValueError(
            f"SynthScapes split must be one of {', '.join(SYNTH_SPLITS)}, got {split!r}"
        )
    length = DEFAULT_SYNTH_LENGTH
    if len(parts) == 3:
        try:
            length = int(parts[2])
        except ValueError as exc:
            raise ValueError(
                f"SynthScapes length must be a whole number, got {parts[2]!r}"
            ) from exc
        if length < 1:
            raise ValueError(f"SynthScapes length must be at least 1, got {length}")
    try:
        from hmsa_core.data.synthscapes import SynthScapes
    except ImportError as exc:  # pragma: no cover - only while the generator is being written
        raise ValueError(f"the SynthScapes generator is not available: {exc}") from exc
    return SynthScapes(split=split, length=length)


def _open_cityscapes(spec: str) -> Sequence[SegmentationSample]:
    from hmsa_core.data.cityscapes import Cityscapes

    rest = spec[len(CITYSCAPES_PREFIX) :]
    if not rest:
        raise ValueError(f"'cityscapes:' needs a root folder; {SPEC_HELP}")
    root, split = rest, "val"
    if not Path(rest).is_dir() and ":" in rest:
        root, split = rest.rsplit(":", 1)
    if not Path(root).is_dir():
        raise ValueError(f"Cityscapes root {root!r} is not a folder")
    return Cityscapes(root, split or "val")


def open_dataset(spec: str) -> Sequence[SegmentationSample]:
    """Returns the dataset named by ``spec``: a sequence of :class:`SegmentationSample`.

    Accepted specs:
        ``synthscapes``, ``synthscapes:<split>``, ``synthscapes:<split>:<N>``: N generated
        SynthScapes scenes (default split ``val``, N 100) at 512 x 1024.
        ``cityscapes:<root>`` or ``cityscapes:<root>:<split>``: the Cityscapes layout
        (default split ``val``); a plain folder path that holds ``leftImg8bit`` is read the
        same way.
        ``<folder>``: images with ``masks/<stem>.png`` or ``<stem>_mask.png`` masks
        (see :mod:`hmsa_core.data.folders`).

    Raises:
        ValueError: an unrecognised spec, a missing folder or an invalid layout.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"empty dataset spec; {SPEC_HELP}")
    spec = spec.strip()
    if spec == SYNTH_PREFIX or spec.startswith(SYNTH_PREFIX + ":"):
        return _open_synthscapes(spec)
    if spec.startswith(CITYSCAPES_PREFIX):
        return _open_cityscapes(spec)
    path = Path(spec)
    if path.is_dir():
        from hmsa_core.data.cityscapes import Cityscapes, is_cityscapes_root
        from hmsa_core.data.folders import ImageFolder

        if is_cityscapes_root(path):
            return Cityscapes(path, "val")
        return ImageFolder(path)
    if path.exists():
        raise ValueError(f"dataset {spec!r} is a file, not a folder; {SPEC_HELP}")
    raise ValueError(f"unknown dataset {spec!r}: no such folder; {SPEC_HELP}")
