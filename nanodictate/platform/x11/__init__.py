"""X11 backends (python-xlib): XGrabKey hotkeys, XTEST keystrokes, EWMH/XSetInputFocus focus.

Hotkeys run on their own connection and thread; keyboard output and focus tracking share a
second connection, used from the caller's thread under a lock.
"""

from __future__ import annotations

from nanodictate.platform.base import PlatformBackends
from nanodictate.platform.x11._xlib import X11ConnectionError, open_display
from nanodictate.platform.x11.focus import X11FocusTracker
from nanodictate.platform.x11.hotkeys import X11HotkeyBackend
from nanodictate.platform.x11.keyboard import X11Connection, X11KeyboardOutput

__all__ = [
    "X11Connection",
    "X11FocusTracker",
    "X11HotkeyBackend",
    "X11KeyboardOutput",
    "create_backends",
    "server_answers",
]


def server_answers(display_name: str | None = None) -> tuple[bool, str]:
    """(True, "") when the X server at `display_name` (default $DISPLAY) accepts a connection."""
    try:
        display = open_display(display_name)
    except X11ConnectionError as exc:
        return False, str(exc)
    display.close()
    return True, ""


def create_backends(display_name: str | None = None) -> PlatformBackends:
    connection = X11Connection(display_name)
    return PlatformBackends(
        hotkeys=X11HotkeyBackend(display_name),
        keyboard=X11KeyboardOutput(connection),
        focus=X11FocusTracker(connection),
        name="x11",
    )
