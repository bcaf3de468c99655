"""Argument helpers shared by every command line, so that each spells things the same way.

Scales are accepted as one token with commas (``--scales 0.5,1,2``), as separate tokens
(``--scales 0.5 1 2``), or both mixed; a list of cascades separates cascades with ``;``
(``--cascades "0.5,1;0.5,1,2"``), and separate tokens without ``;`` make one cascade.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

from hmsa_core.cascade import parse_scales

#: The cascade every command defaults to.
DEFAULT_SCALES: tuple[float, ...] = (0.5, 1.0, 2.0)


def scales_from_tokens(tokens: Sequence[str]) -> tuple[float, ...]:
    """Returns the scales of command-line tokens such as ``["0.5,1,2"]`` or ``["0.5", "1", "2"]``.

    Raises:
        ValueError: no scale, or a token that is not a number (named).
    """
    scales = parse_scales(" ".join(tokens))
    if not scales:
        raise ValueError("no scales given; write e.g. --scales 0.5,1,2 or --scales 0.5 1 2")
    return scales


def cascades_text(tokens: Sequence[str]) -> str:
    """Returns the ``;``-separated cascade list of command-line tokens: ``["0.5,1;0.5,1,2"]``
    stays as it is and ``["0.5", "1", "2"]`` is the single cascade ``"0.5 1 2"``."""
    return " ".join(tokens)


class _TokensAction(argparse.Action):
    """Stores ``parse(tokens)`` of the option's tokens; a ``ValueError`` becomes the usual
    argparse error (exit code 2), with a hint when positional files follow the option."""

    parse: Callable[[list[str]], object]

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        try:
            setattr(namespace, self.dest, type(self).parse(list(values)))
        except ValueError as exc:
            hint = ""
            if any(p.option_strings == [] and p.nargs in ("+", "*") for p in parser._actions):
                hint = f" (to give files after {option_string}, end its values with --)"
            raise argparse.ArgumentError(self, f"{exc}{hint}") from exc


class _ScalesAction(_TokensAction):
    parse = staticmethod(scales_from_tokens)


class _CascadesAction(_TokensAction):
    parse = staticmethod(cascades_text)


def add_scales_argument(
    parser: argparse.ArgumentParser,
    flag: str = "--scales",
    default: Sequence[float] = DEFAULT_SCALES,
    help: str = "the cascade",
) -> argparse.Action:
    """Adds ``flag`` parsing into a tuple of floats (``0.5,1,2`` or ``0.5 1 2``); returns the
    action. The default is stored as a tuple too."""
    shown = ",".join(f"{s:g}" for s in default)
    return parser.add_argument(
        flag,
        nargs="+",
        action=_ScalesAction,
        default=tuple(float(s) for s in default),
        metavar="SCALE",
        help=f"{help}: 0.5,1,2 or 0.5 1 2 (default {shown})",
    )


def add_cascades_argument(
    parser: argparse.ArgumentParser,
    flag: str = "--cascades",
    default: str = "0.5,1,2",
    help: str = "cascades",
) -> argparse.Action:
    """Adds ``flag`` holding a ``;``-separated list of cascades as text (for
    :func:`analysis.cascades.parse_cascades`); tokens given apart are joined with spaces, so
    ``--cascades 0.5 1 2`` is the one cascade (0.5, 1, 2)."""
    return parser.add_argument(
        flag,
        nargs="+",
        action=_CascadesAction,
        default=default,
        metavar="CASCADES",
        help=f"{help}, ';'-separated, each 0.5,1,2 or 0.5 1 2, e.g. '0.5,1;0.5,1,2' "
        f"(default {default!r})",
    )


def bench_parser(program: str, description: str | None, example: str) -> argparse.ArgumentParser:
    """Returns the argument parser of ``python -m analysis.bench <program>`` whose ``--help``
    ends on the worked ``example`` (its arguments)."""
    parser = argparse.ArgumentParser(
        prog=f"python -m analysis.bench {program}", description=description
    )
    return with_example(parser, f"python -m analysis.bench {program} {example}")


def with_example(parser: argparse.ArgumentParser, *examples: str) -> argparse.ArgumentParser:
    """Returns ``parser`` with its ``--help`` ending on worked examples (an epilog that keeps
    its line breaks)."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = "example:\n" + "\n".join(f"  {e}" for e in examples)
    return parser
