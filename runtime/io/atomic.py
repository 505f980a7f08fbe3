"""Atomic file writes: write to a temporary file in the same folder, then rename over the target.

A crash or a full disk never leaves a half-written output under the final name.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator


# Temporary names add ".", "." + 8 random characters and ".tmp" (+ the suffix for atomic_path) to
# the target's name; the part taken from the name is cut so the temporary name stays legal
# wherever the final name is (a 249-character micrograph name is legal, 249 + 14 is not).
_NAME_MAX = 255
_TMP_EXTRA = 1 + 1 + 8 + 4


def _tmp_prefix(name: str, suffix: str = "") -> str:
    """``.NAME.`` with NAME cut so that the whole temporary name fits in 255 bytes."""
    keep = _NAME_MAX - _TMP_EXTRA - len(suffix.encode("utf-8", "surrogateescape"))
    raw = name.encode("utf-8", "surrogateescape")[:max(1, keep)]
    return "." + raw.decode("utf-8", "ignore") + "."


def _default_mode() -> int:
    """Permissions a plain open() would give a new file (0o666 minus the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success rename it to ``path``, else delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path.name), suffix=".tmp", dir=path.parent)
    try:
        # surrogateescape: a file name that is not valid UTF-8 is written back as its own bytes
        text = "b" not in mode
        with os.fdopen(fd, mode, encoding=encoding if text else None,
                       errors="surrogateescape" if text else None) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _default_mode())  # mkstemp makes 0600 files; outputs are shared data
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for libraries that write by name; rename on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path.name, path.suffix), suffix=".tmp" + path.suffix,
                                dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
