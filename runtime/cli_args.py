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


def help_epilog(examples: str, writes: str | None = None, exit_codes: str | None = None) -> str:
    """The epilog of a command's --help: its examples, the files it writes, its exit codes."""
    text = "examples:\n" + _indented(examples)
    if writes:
        text += "\n\nwrites:\n" + _indented(writes)
    if exit_codes:
        text += "\n\nexit codes:\n" + _indented(exit_codes)
    return text


def _indented(block: str) -> str:
    return "\n".join(f"  {line}" if line else "" for line in block.strip("\n").splitlines())


def _number(text: str, kind: type, what: str) -> float | int:
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"needs {what}, got {text!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"needs {what}, got {text!r}")
    return value


def _checked(name: str, kind: type, accept, what: str, doc: str):
    """An argparse type: ``kind(text)``, finite, and ``accept(value)``; else one line naming ``what``."""
    def check(text: str):
        value = _number(text, kind, what)
        if not accept(value):
            raise argparse.ArgumentTypeError(f"needs {what}, got {text!r}")
        return value

    check.__name__, check.__qualname__, check.__doc__ = name, name, doc
    return check


positive_float = _checked("positive_float", float, lambda v: v > 0, "a positive number",
                          "A finite number > 0 (e.g. a diameter in pixels).")
nonnegative_float = _checked("nonnegative_float", float, lambda v: v >= 0, "a number >= 0", "A finite number >= 0.")
positive_int = _checked("positive_int", int, lambda v: v >= 1, "a whole number >= 1",
                        "A whole number >= 1 (e.g. a batch size).")
nonnegative_int = _checked("nonnegative_int", int, lambda v: v >= 0, "a whole number >= 0",
                           "A whole number >= 0 (e.g. a count where 0 means none).")
# a score threshold: 0 would keep every peak, so it is refused
fraction = _checked("fraction", float, lambda v: 0 < v <= 1, "a number in (0, 1]", "A number in (0, 1].")
open_fraction = _checked("open_fraction", float, lambda v: 0 <= v < 1, "a number in [0, 1)",
                         "A number in [0, 1) (e.g. the share of micrographs held out for validation).")
finite_float = _checked("finite_float", float, lambda v: True, "a finite number",
                        "Any finite number (e.g. a logit threshold, which may be negative).")
