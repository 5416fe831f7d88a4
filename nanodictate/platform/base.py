"""What a platform module hands the app: a global-hotkey backend, and the set chosen at start-up.

- `HotkeyBackend`: a global push-to-talk key that reports every real press and release, with
  the errors its `register` raises (`HotkeyTakenError`, `HotkeysUnavailableError`).
- `PlatformBackends`: the hotkey, keyboard and focus backends `select_backends()` chose.

The keyboard and focus protocols (and the window they describe) are the core's ports,
`nanodictate.core.ports`: the core's text output is written against them, and the platform
implements them. The hotkey backend's protocol stays here because only the platform
implements it and only the UI drives it (`ui.hotkey_registration`); the core sees hotkeys as
(id, pressed) events and never holds a backend. The key names it grabs are the core's hotkey
grammar, `nanodictate.core.hotkeys`.

Nothing here imports Qt or an OS library. Each OS module (`x11`, `wayland`, `windows`, `macos`,
`unavailable`) implements the protocols; `nanodictate.platform.select_backends()` picks one set
once at start-up and logs why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from nanodictate.core.errors import NanodictateError
from nanodictate.core.hotkeys import Hotkey
from nanodictate.core.ports import FocusTracker, KeyboardOutput

__all__ = [
    "HotkeyBackend",
    "HotkeyEventCallback",
    "HotkeyTakenError",
    "HotkeysUnavailableError",
    "PlatformBackends",
]

# ---------------------------------------------------------------------------------------------
# Hotkeys
# ---------------------------------------------------------------------------------------------


class HotkeyTakenError(NanodictateError):
    """Another program already holds the hotkey (X11: BadAccess on XGrabKey)."""

    def __init__(self, hotkey: Hotkey) -> None:
        self.hotkey = hotkey
        super().__init__(
            f"The hotkey {hotkey} is already used by another program. "
            "Choose another one in Settings."
        )


class HotkeysUnavailableError(NanodictateError):
    """This platform backend cannot grab global keys; the message says what to do instead."""


#: on_event(hotkey_id, pressed): called on the backend's own thread.
HotkeyEventCallback = Callable[[str, bool], None]


@runtime_checkable
class HotkeyBackend(Protocol):
    """Global hotkeys with press *and* release (push-to-talk).

    Contract:
    - `start(on_event)` before `register`. `on_event(hotkey_id, pressed)` runs on the backend's
      own thread, once per real press and once per real release: a held key is one press and one
      release, whatever the key repeat does. Keep the callback short (post to a queue/signal).
    - `register` is synchronous: when it returns the key is grabbed, or it raised
      `HotkeyTakenError` (another program holds it; nothing of ours is left grabbed) or
      `HotkeysUnavailableError`/`ValueError` (unknown key).
    - `stop()` releases every grab and joins the thread; calling it twice is fine.
    """

    name: str
    #: Can grab a key for a moment (the cancel key, only while recording) without asking the
    #: user. The desktop portal cannot: it rebinds the whole set, and may ask, on each change.
    temporary_grabs: bool

    def availability(self) -> tuple[bool, str]:
        """(True, "") when usable; else (False, a reason written for the user)."""
        ...

    def start(self, on_event: HotkeyEventCallback) -> None: ...

    def register(self, hotkey_id: str, hotkey: Hotkey) -> None: ...

    def unregister(self, hotkey_id: str) -> None: ...

    def stop(self) -> None: ...


# ---------------------------------------------------------------------------------------------
# The chosen set
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlatformBackends:
    """The backends chosen at start-up (see `nanodictate.platform.select_backends`).

    `name` is "x11", "wayland", "windows", "macos" or "unavailable"; `notes` holds the reasons
    for any fallback, written for the user (also logged once).
    """

    hotkeys: HotkeyBackend
    keyboard: KeyboardOutput
    focus: FocusTracker
    name: str
    notes: tuple[str, ...] = ()

    def close(self) -> None:
        """Stop the hotkey thread and close the connections the backends opened."""
        self.hotkeys.stop()
        for part in (self.keyboard, self.focus):
            close = getattr(part, "close", None)
            if callable(close):
                close()
