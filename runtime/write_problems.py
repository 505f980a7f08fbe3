"""Why an output could not be written, and whether that ends the run or only fails one micrograph.

A problem of the output folder (no permission, read-only file system, disk or quota full, I/O
error) would fail every micrograph after it, so it ends the run with one :class:`OutputFolderError`
(the CLI prints it as one ``error:`` line, exit 2, after the summary of what was done). Any other
problem (a name too long for the file system, a name that cannot be encoded) fails only the
micrograph whose outputs it concerns; that micrograph's outputs written so far are removed, so
``--skip-existing`` and ``--watch`` never take a half-written set for a finished one.
"""
from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import Iterable

from .errors import EpickError

# errno values that concern the whole output folder, not one file name
RUN_LEVEL_ERRNOS = frozenset(e for e in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC,
                                         getattr(errno, "EDQUOT", None), errno.EIO) if e is not None)


class OutputFolderError(EpickError):
    """The output folder cannot take more outputs (permission, read-only, disk full): the run ends."""


def is_run_level(exc: BaseException) -> bool:
    """True when ``exc`` (raised while writing an output) would fail every later write too."""
    return isinstance(exc, OSError) and exc.errno in RUN_LEVEL_ERRNOS


def output_folder_error(exc: OSError, out_dir: str | Path) -> OutputFolderError:
    """One line naming the folder, what went wrong and the fix."""
    what = os.strerror(exc.errno) if exc.errno else str(exc)
    fix = {errno.ENOSPC: "free space on that disk, or give another --out",
           errno.EACCES: "give a folder you may write to with --out",
           errno.EPERM: "give a folder you may write to with --out",
           errno.EROFS: "give a folder on a writable file system with --out"}.get(exc.errno, "check the disk")
    where = getattr(exc, "filename", None) or out_dir
    return OutputFolderError(f"cannot write outputs in {out_dir} ({what}: {where}); {fix}. "
                             "Rerun the same command with --skip-existing to pick the rest")


def describe_write_error(exc: BaseException) -> str:
    """A one-line reason for a micrograph whose outputs could not be written."""
    if isinstance(exc, OSError) and exc.errno == errno.ENAMETOOLONG:
        return (f"its output file name is too long for the file system ({Path(exc.filename or '').name[:40]}...); "
                "rename the micrograph with a shorter name")
    if isinstance(exc, UnicodeError):
        return f"its name cannot be written as text ({exc}); rename the micrograph"
    if isinstance(exc, OSError):
        return f"its outputs could not be written ({os.strerror(exc.errno) if exc.errno else exc})"
    return f"its outputs could not be written ({type(exc).__name__}: {exc})"


def check_output_folder(out_dir: str | Path) -> None:
    """Create ``out_dir`` and make sure files can be created in it; raise OutputFolderError if not."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".epick-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        if exc.errno in (errno.ENOTDIR, errno.EEXIST):
            raise OutputFolderError(f"--out {out_dir} is not a folder; give a folder for the outputs") from exc
        raise output_folder_error(exc, out_dir) from exc


def remove_outputs(paths: Iterable[Path]) -> None:
    """Delete the given outputs (those of a micrograph whose set could not be completed)."""
    for path in paths:
        with contextlib.suppress(OSError):
            Path(path).unlink()


def same_stem_groups(paths: Iterable[Path]) -> list[list[Path]]:
    """Micrographs that would share output files (``a.jpg`` and ``a.mrc`` both write
    ``a_autopick.star``): groups of two or more paths with one stem, sorted."""
    by_stem: dict[str, list[Path]] = {}
    for path in paths:
        by_stem.setdefault(Path(path).stem, []).append(Path(path))
    return [sorted(group) for _, group in sorted(by_stem.items()) if len(group) > 1]


def same_stem_error(groups: list[list[Path]]) -> EpickError:
    """Refuse a batch in which micrographs share a stem, naming them and the fix."""
    shown = "; ".join(" and ".join(str(p) for p in group) for group in groups[:5])
    more = f" (and {len(groups) - 5} more)" if len(groups) > 5 else ""
    return EpickError(f"{sum(map(len, groups))} micrographs share a name stem, so their outputs would "
                      f"overwrite each other: {shown}{more}; pick one kind (e.g. 'DIR/*.mrc'), or rename them")
