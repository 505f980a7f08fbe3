"""What every epick command line shares: the parser class and the checked number types.

- :class:`ArgumentParser`: argparse without abbreviations (``--o`` never silently means ``--out``
  or ``--object``; RELION's External job passes ``--o``), a usage error is ONE line on stderr
  naming the command and pointing at ``--help`` (exit 2), and ``--help`` keeps the epilog's line
  breaks (examples and the files a command writes).
- Number types for options: ``positive_float`` (diameters, sizes, seconds, ...),
  ``positive_int`` (batch sizes, counts), ``fraction`` (a score threshold in (0, 1]),
  ``nonnegative_int`` / ``nonnegative_float`` where zero is meaningful. Each refuses non-numbers,
  NaN, infinities and out-of-range values with one line saying what was given and what is needed.
"""
from __future__ import annotations

import argparse
import math
import sys
from typing import NoReturn


class ArgumentParser(argparse.ArgumentParser):
    """argparse.ArgumentParser with allow_abbrev=False, one-line errors and a verbatim epilog."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """Print ``PROG: error: MESSAGE (see PROG --help)`` on one line and exit with code 2."""
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(2)


def help_epilog(examples: str, writes: str | None = None) -> str:
    """The epilog of a command's --help: its examples, then the files it writes."""
    text = "examples:\n" + "\n".join(f"  {line}" if line else "" for line in examples.strip("\n").splitlines())
    if writes:
        text += "\n\nwrites:\n" + "\n".join(f"  {line}" if line else "" for line in writes.strip("\n").splitlines())
    return text


def _number(text: str, kind: type, what: str) -> float | int:
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"needs {what}, got {text!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"needs {what}, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (e.g. a diameter in pixels)."""
    value = _number(text, float, "a positive number")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"needs a positive number, got {text!r}")
    return value


def nonnegative_float(text: str) -> float:
    """A finite number >= 0."""
    value = _number(text, float, "a number >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"needs a number >= 0, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """A whole number >= 1 (e.g. a batch size)."""
    value = _number(text, int, "a whole number >= 1")
    if value < 1:
        raise argparse.ArgumentTypeError(f"needs a whole number >= 1, got {text!r}")
    return value


def nonnegative_int(text: str) -> int:
    """A whole number >= 0 (e.g. a count where 0 means none)."""
    value = _number(text, int, "a whole number >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"needs a whole number >= 0, got {text!r}")
    return value


def fraction(text: str) -> float:
    """A number in (0, 1] (a score threshold: 0 would keep every peak, so it is refused)."""
    value = _number(text, float, "a number in (0, 1]")
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"needs a number in (0, 1], got {text!r}")
    return value


def open_fraction(text: str) -> float:
    """A number in [0, 1) (e.g. the share of micrographs held out for validation)."""
    value = _number(text, float, "a number in [0, 1)")
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"needs a number in [0, 1), got {text!r}")
    return value
