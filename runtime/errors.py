"""Exceptions that carry a message a user can act on (which file, what is wrong, how to fix it)."""
from __future__ import annotations

from pathlib import Path


class EpickError(Exception):
    """Base class: the CLI prints these as one line, without a traceback, and exits with code 2."""


class FileProblem(EpickError):
    """A file could not be used: names the file, the problem and (optionally) the fix."""

    def __init__(self, path: str | Path, problem: str, fix: str | None = None):
        self.path = str(path)
        self.problem = problem
        self.fix = fix
        msg = f"{self.path}: {problem}"
        if fix:
            msg += f" ({fix})"
        super().__init__(msg)


class MicrographError(FileProblem):
    """A micrograph is empty, truncated, corrupt, mislabelled or of an unsupported kind."""


class CoordinateError(FileProblem):
    """A coordinate file cannot be read or written in the requested format."""


class ModelFileError(FileProblem):
    """A model file or exported artifact is wrong, damaged, stale or of another format version."""
