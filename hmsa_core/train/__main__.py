"""``python -m hmsa_core.train``: train on SynthScapes (see :mod:`hmsa_core.train.config` flags)."""

from __future__ import annotations

import os
import shlex
import sys

from hmsa_core.train.config import build_parser, config_from_args
from hmsa_core.train.evaluate import Scorer, installed_scorer
from hmsa_core.train.loop import train


def command_line(argv: list[str]) -> str:
    """Returns the command that reproduces this run (``torchrun`` form under torchrun)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    prefix = (
        f"torchrun --nproc_per_node {world} -m hmsa_core.train"
        if world > 1
        else "python -m hmsa_core.train"
    )
    return f"{prefix} {shlex.join(argv)}".strip()


def main(argv: list[str] | None = None, scorer: Scorer | None = None) -> int:
    """Parses flags, trains, returns the exit status (2 on a bad configuration).

    ``scorer`` validates the model (see :mod:`hmsa_core.train.evaluate`); ``None`` uses the
    installed ``hmsa_core.validation`` plugin, and without one validation is skipped (said on
    stderr).
    """
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cfg = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    scorer = scorer or installed_scorer()
    if scorer is None and cfg.val_scenes:
        print(
            "note: no validation scorer is installed (pip install -e . registers analysis's): "
            "training without validation",
            file=sys.stderr,
        )
    train(
        cfg,
        command=command_line(argv),
        measure_cost=not args.no_cost,
        export=args.export,
        scorer=scorer,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
