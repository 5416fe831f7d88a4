"""macOS: not supported yet — every part reports why, nothing pretends to work.

NOT RUN IN CI. What a real backend needs (kept out to avoid heavy dependencies):
- Hotkeys with press and release: a Quartz event tap (`CGEventTapCreate`, through pyobjc or
  ctypes on ApplicationServices), which needs the Input Monitoring permission; `RegisterEventHotKey`
  (Carbon) reports presses only.
- Paste: a synthetic Cmd+V (`CGEventPost`), which needs the Accessibility permission.
- Focus: `NSWorkspace.frontmostApplication` and `activateWithOptions:`.
Until then the app works in copy mode: the text goes to the clipboard; paste with Cmd+V, and
start/stop dictation from the tray menu or with `nanodictate toggle` bound to a key (e.g. in
Shortcuts.app).
"""

from __future__ import annotations

from nanodictate.platform.base import PlatformBackends
from nanodictate.platform.unavailable import (
    CopyOnlyKeyboardOutput,
    NoFocusTracker,
    UnavailableHotkeys,
)

__all__ = ["MACOS_REASON", "create_backends"]

MACOS_REASON = (
    "Global hotkeys and automatic paste are not supported on macOS yet: start and stop "
    "dictation from the tray menu (or bind `nanodictate toggle` to a key) and paste with Cmd+V"
)


def create_backends() -> PlatformBackends:
    return PlatformBackends(
        hotkeys=UnavailableHotkeys(MACOS_REASON, name="macos"),
        keyboard=CopyOnlyKeyboardOutput(MACOS_REASON, name="macos-copy-only"),
        focus=NoFocusTracker(MACOS_REASON, name="macos"),
        name="macos",
        notes=(MACOS_REASON,),
    )
