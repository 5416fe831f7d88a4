"""Loading Windows DLLs through ctypes in a way that imports and type-checks on every OS."""

from __future__ import annotations

import ctypes
from typing import Any


def dll(name: str) -> Any:
    """A Windows DLL (getattr keeps this module importable and type-checkable elsewhere)."""
    loader = getattr(ctypes, "WinDLL")  # noqa: B009
    return loader(name, use_last_error=True)


def last_error() -> int:
    return int(getattr(ctypes, "get_last_error")())  # noqa: B009
