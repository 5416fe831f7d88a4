"""What the dictation needs from the desktop to deliver text, declared once, here in the core.

- `WindowInfo`: the window that had focus at key-down, as the focus tracker saw it.
- `FocusTracker`: which window has focus, and give focus back to it after recording.
- `KeyboardOutput`: wait until the user has let go of the keys, then paste (Ctrl+V, or
  Ctrl+Shift+V in terminals, or Shift+Insert in xterm-like terminals where the backend is also
  a `PrimaryPasteKeyboard`) or, as a fallback, type text.
- `ClipboardPort`: the clipboard (and X11's PRIMARY selection) as `text_output` uses it.

`core.text_output` is written against these. Each OS module of `nanodictate.platform`
implements the keyboard and focus ports; `nanodictate.ui.clipboard` implements the clipboard
port with Qt. Nothing here imports Qt or an OS library.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from nanodictate.core.errors import NanodictateError

__all__ = [
    "ClipboardPort",
    "FocusTracker",
    "KeyboardOutput",
    "KeyboardOutputUnavailableError",
    "PrimaryPasteKeyboard",
    "WindowInfo",
    "normal_process_name",
]

# ---------------------------------------------------------------------------------------------
# Focus
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WindowInfo:
    """A top-level window as the focus tracker saw it.

    `id` is the platform's window handle (X11 window id, Windows HWND); `app_class` is X11's
    WM_CLASS class part (or the process/app name elsewhere); `is_terminal` says whether a paste
    there needs Ctrl+Shift+V; `pastes_primary` that it needs the PRIMARY selection and
    Shift+Insert instead (xterm and its kin, X11 only). `process_name` is the name of the
    program that owns the window, in one form on every OS (`normal_process_name`: the
    executable's base name without ".exe", lower case: "firefox", "windowsterminal"), empty
    when unknown (a window of another host, a process we may not look at).
    """

    id: int
    title: str
    app_class: str
    is_terminal: bool
    pastes_primary: bool = False
    process_name: str = ""


def normal_process_name(executable: str) -> str:
    r"""The form `WindowInfo.process_name` takes, whichever OS reported the program:
    `C:\Apps\WindowsTerminal.exe` → "windowsterminal", `/usr/bin/kitty` → "kitty"."""
    base = executable.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if base.lower().endswith(".exe"):
        base = base[: -len(".exe")]
    return base.lower()


@runtime_checkable
class FocusTracker(Protocol):
    name: str

    def availability(self) -> tuple[bool, str]: ...

    def focused_window(self) -> WindowInfo | None:
        """The window with keyboard focus now, or None when none / unknown."""
        ...

    def refocus(self, window: WindowInfo) -> bool:
        """Give focus back to `window`; True when it has focus afterwards."""
        ...


# ---------------------------------------------------------------------------------------------
# Keyboard
# ---------------------------------------------------------------------------------------------


class KeyboardOutputUnavailableError(NanodictateError):
    """No way to send keystrokes here; the text stays on the clipboard for the user to paste."""


@runtime_checkable
class KeyboardOutput(Protocol):
    """Synthetic keystrokes into the focused window.

    Paste is the default way text reaches a window (clipboard + `send_paste`): it is exact for
    every script. `type_text` is a fallback; see each backend for its limits with non-ASCII.
    A backend that cannot send keys raises `KeyboardOutputUnavailableError`.
    """

    name: str

    def availability(self) -> tuple[bool, str]: ...

    def wait_until_keys_released(self, timeout: float) -> bool:
        """Block until no key is held down; False when `timeout` seconds passed first.

        Call it before `send_paste`: a modifier still held turns Ctrl+V into another shortcut,
        and while a hotkey's grab is active the synthetic keys would come back to us.
        """
        ...

    def send_paste(self, *, terminal: bool) -> None:
        """Press Ctrl+V (Ctrl+Shift+V when `terminal`) in the focused window."""
        ...

    def type_text(self, text: str) -> None:
        """Type `text` key by key (fallback for windows that do not take a paste)."""
        ...


@runtime_checkable
class PrimaryPasteKeyboard(Protocol):
    """A keyboard backend that can also paste the PRIMARY selection (X11: Shift+Insert), for
    the windows `WindowInfo.pastes_primary` marks.

    Optional: backends of desktops without a PRIMARY selection do not have it; the text output
    checks for it at run time."""

    def send_primary_paste(self) -> None: ...


# ---------------------------------------------------------------------------------------------
# Clipboard
# ---------------------------------------------------------------------------------------------


class ClipboardPort(Protocol):
    """The clipboard as text output needs it (Qt's lives in nanodictate.ui.clipboard)."""

    def snapshot(self) -> object:
        """Everything on the clipboard now, to give back to `restore`."""
        ...

    def put_text(self, text: str) -> None: ...

    def read_text(self) -> str | None: ...

    def arm_read_detection(self) -> None:
        """Start watching for another program reading the clipboard (our text)."""
        ...

    def was_read(self) -> bool | None:
        """Whether our text was read since `arm_read_detection`; None if we cannot know."""
        ...

    def restore(self, snapshot: object) -> None: ...
