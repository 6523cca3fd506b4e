"""The optional C accelerator (``_speedups.c``), found once.

``LEAKSENTRY_SPEEDUPS=0`` makes the scanner use its pure-Python path even where the
extension is built (for comparing the two, or ruling the extension out when
debugging); results are the same either way.
"""

from __future__ import annotations

import os
from types import ModuleType


def speedups() -> ModuleType | None:
    """The extension module, or None when it is not built or switched off."""
    if os.environ.get("LEAKSENTRY_SPEEDUPS", "1") == "0":
        return None
    try:
        from pipelines.match import _speedups
    except ImportError:  # built without a compiler or OpenSSL's headers
        return None
    module: ModuleType = _speedups  # a C extension: no type information
    return module


def resolve(wanted: bool | None) -> ModuleType | None:
    """The extension for a ``speedups=`` argument: None when False or not available;
    True insists on it."""
    fast = speedups() if wanted is not False else None
    if wanted and fast is None:
        raise RuntimeError("the C speedups are not built (pipelines/match/_speedups.c)")
    return fast
