"""``hmsa``: one command for every tool of the project (installed by ``pip install -e .``).

Each subcommand hands its arguments to the module that does the work, so ``hmsa report ...``
and ``python -m analysis.report ...`` are the same program:

==============  =====================================  ===================================
subcommand      runs                                   what it does
==============  =====================================  ===================================
segment         :mod:`analysis.segment`                mask PNG, per-scale maps, metrics
report          :mod:`analysis.report`                 self-contained HTML report
sweep           :mod:`analysis.sweep`                  every cascade x method over a dataset
scale-stats     :mod:`analysis.scale_stats`            which scale decides each class, size,
                                                       boundary distance (``--by``)
calibration     :mod:`analysis.where_cli`              calibration (ECE, reliability) per method
bench           :mod:`analysis.bench`                  speed, merge and official benchmarks
download        :mod:`hmsa_core.download`              fetch pretrained weights
train           :mod:`hmsa_core.train`                 train on SynthScapes (with validation)
==============  =====================================  ===================================
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    """A subcommand: the module whose ``main(argv)`` runs it, and one line of help."""

    module: str
    help: str


COMMANDS: dict[str, Command] = {
    "segment": Command("analysis.segment", "segment images or folders: mask PNG, maps, metrics"),
    "report": Command("analysis.report", "write a self-contained HTML report of a run or sweep"),
    "sweep": Command("analysis.sweep", "score every cascade x merge method over a dataset"),
    "scale-stats": Command(
        "analysis.scale_stats",
        "which scale wins, --by class|size|boundary|distance, over a dataset",
    ),
    "calibration": Command("analysis.where_cli", "calibration (ECE, reliability) per merge method"),
    "bench": Command("analysis.bench.__main__", "benchmarks: speed, merge, official"),
    "download": Command("hmsa_core.download", "download pretrained weights (e.g. cityscapes)"),
    "train": Command("hmsa_core.train.__main__", "train HMSA or explicit attention on SynthScapes"),
}

EXAMPLES = (
    "hmsa segment assets/samples --scales 0.5 1 2 --out segmented",
    "hmsa report --image assets/samples/synthscapes_val_000.png --scales 0.5,1,2 --out report.html",
    "hmsa scale-stats --data synthscapes:val:8 --scales 0.5 1 2",
    "hmsa scale-stats --by size --data synthscapes:val:8 --json size.json",
    "hmsa calibration --data synthscapes:val:8 --json calibration.json",
    "hmsa bench speed --repeats 3",
    "hmsa train --arch lite --steps 500 --out runs/hmsa",
)

DOWNLOAD_EXAMPLE = "hmsa download cityscapes   (then: hmsa segment street.jpg --model cityscapes)"
BENCH_EXAMPLE = "hmsa bench speed --repeats 3   (or: merge, official --size 256x512)"


def build_parser() -> argparse.ArgumentParser:
    """Returns the top-level parser of ``hmsa`` (its help lists the subcommands)."""
    parser = argparse.ArgumentParser(
        prog="hmsa",
        description="HMSA Explorer: segment, report, sweep, measure and train from one command. "
        "`hmsa COMMAND --help` shows a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n" + "\n".join(f"  {e}" for e in EXAMPLES),
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in COMMANDS.items():
        subparsers.add_parser(name, help=command.help, add_help=False)
    return parser


def _bench(argv: list[str]) -> int:
    from analysis.bench.__main__ import BENCHMARKS
    from analysis.bench.__main__ import main as bench_main

    if not argv or argv[0] in ("-h", "--help"):
        print("usage: hmsa bench {" + ",".join(sorted(BENCHMARKS)) + "} [options]")
        print("\nrun a benchmark; `hmsa bench NAME --help` shows its options.")
        print(f"\nexample:\n  {BENCH_EXAMPLE}")
        return 0 if argv else 2
    return bench_main(argv)


def _calibration(argv: list[str]) -> int:
    from analysis.where_cli import calibration_main

    return calibration_main(argv)


def _train(argv: list[str]) -> int:
    from analysis.train_validation import validation_scores
    from hmsa_core.train.__main__ import main as train_main

    return train_main(argv, scorer=validation_scores)


def _download(argv: list[str]) -> int:
    try:
        module = importlib.import_module("hmsa_core.download")
    except ModuleNotFoundError:
        print("error: this installation has no hmsa_core.download module", file=sys.stderr)
        return 2
    if any(a in ("-h", "--help") for a in argv):
        with contextlib.suppress(SystemExit):  # argparse exits after printing the help
            module.main(["--help"])
        print(f"\nexample:\n  {DOWNLOAD_EXAMPLE}")
        return 0
    return int(module.main(argv) or 0)


#: Subcommands that need more than the module's ``main(argv)``.
SPECIAL: dict[str, Callable[[list[str]], int]] = {
    "bench": _bench,
    "calibration": _calibration,
    "train": _train,
    "download": _download,
}


def main(argv: list[str] | None = None) -> int:
    """Runs ``hmsa COMMAND ...``; returns the command's exit code (2 for an unknown command)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        parser.print_usage(sys.stderr)
        print(
            f"hmsa: error: unknown command {name!r}; choose from {', '.join(COMMANDS)}",
            file=sys.stderr,
        )
        return 2
    try:
        if name in SPECIAL:
            return int(SPECIAL[name](rest) or 0)
        return int(importlib.import_module(COMMANDS[name].module).main(rest) or 0)
    except SystemExit as exc:  # argparse's --help (0) and usage errors (2)
        return int(exc.code) if isinstance(exc.code, int) else 2


if __name__ == "__main__":
    sys.exit(main())
