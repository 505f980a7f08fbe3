"""epick.runtime: the lean picking runtime (no torch unless a torch backend is asked for).

Heavy names are loaded on first use so that `import epick.runtime` stays fast and light.
"""
from __future__ import annotations

__all__ = ["Picker", "Picks", "EpickError"]

from .errors import EpickError
from .picks import Picks


def __getattr__(name: str):
    if name == "Picker":
        from .picker import Picker

        return Picker
    raise AttributeError(f"module 'epick.runtime' has no attribute {name!r}")
