"""Backends for when the OS gives us nothing: each reports why, none pretends to work.

Used where no display server answers, for the parts Wayland and macOS do not offer, and as
the logged fallback when a real backend fails to start. With these the app still works in
"copy" mode: the text goes to the clipboard and the user pastes it.
"""

from __future__ import annotations

from nanodictate.core.hotkeys import Hotkey
from nanodictate.core.ports import KeyboardOutputUnavailableError, WindowInfo
from nanodictate.platform.base import HotkeyEventCallback, HotkeysUnavailableError

__all__ = ["CopyOnlyKeyboardOutput", "NoFocusTracker", "UnavailableHotkeys"]


class UnavailableHotkeys:
    """`HotkeyBackend` that grabs nothing; `register` raises with the reason."""

    temporary_grabs = False

    def __init__(self, reason: str, *, name: str = "unavailable") -> None:
        self.name = name
        self.reason = reason

    def availability(self) -> tuple[bool, str]:
        return False, self.reason

    def start(self, on_event: HotkeyEventCallback) -> None:
        return None

    def register(self, hotkey_id: str, hotkey: Hotkey) -> None:
        raise HotkeysUnavailableError(self.reason)

    def unregister(self, hotkey_id: str) -> None:
        return None

    def stop(self) -> None:
        return None


class CopyOnlyKeyboardOutput:
    """`KeyboardOutput` that cannot press keys: the app leaves the text on the clipboard."""

    def __init__(self, reason: str, *, name: str = "copy-only") -> None:
        self.name = name
        self.reason = reason

    def availability(self) -> tuple[bool, str]:
        return False, self.reason

    def wait_until_keys_released(self, timeout: float) -> bool:
        return True  # nothing will be sent, so there is nothing to wait for

    def send_paste(self, *, terminal: bool) -> None:
        raise KeyboardOutputUnavailableError(self.reason)

    def type_text(self, text: str) -> None:
        raise KeyboardOutputUnavailableError(self.reason)


class NoFocusTracker:
    """`FocusTracker` that cannot see windows."""

    def __init__(self, reason: str, *, name: str = "unavailable") -> None:
        self.name = name
        self.reason = reason

    def availability(self) -> tuple[bool, str]:
        return False, self.reason

    def focused_window(self) -> WindowInfo | None:
        return None

    def refocus(self, window: WindowInfo) -> bool:
        return False
