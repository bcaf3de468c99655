"""Dispatches ``python -m analysis.bench <name> ...`` to ``analysis.bench.<module>.main(argv)``."""

from __future__ import annotations

import importlib
import sys

# name -> module under analysis.bench providing ``main(argv: list[str]) -> int``.
BENCHMARKS: dict[str, str] = {
    "gpu": "gpu",
    "merge": "merge",
    "official": "official_compare",
    "official-scales": "official_scales",
    "speed": "speed",
    "video": "video",
    "where": "where",
}


def main(argv: list[str] | None = None) -> int:
    """Runs the named benchmark; returns its exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in BENCHMARKS:
        print("usage: python -m analysis.bench {" + ",".join(sorted(BENCHMARKS)) + "} [options]")
        print("  NAME --help lists a benchmark's options")
        print("example:\n  python -m analysis.bench official --size 512x1024 --scales 0.5,1,2")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    module = importlib.import_module(f"analysis.bench.{BENCHMARKS[argv[0]]}")
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
