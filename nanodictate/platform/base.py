"""What the app needs from the operating system, as three small protocols.

- `HotkeyBackend`: a global push-to-talk key that reports every real press and release.
- `KeyboardOutput`: wait until the user has let go of the keys, then paste (Ctrl+V, or
  Ctrl+Shift+V in terminals, or Shift+Insert in xterm-like terminals where the backend has
  `send_primary_paste`) or, as a fallback, type text.
- `FocusTracker`: which window has focus, and give focus back to it after recording.

Nothing here imports Qt or an OS library. Each OS module (`x11`, `wayland`, `windows`, `macos`,
`unavailable`) implements the protocols; `nanodictate.platform.select_backends()` picks one set
once at start-up and logs why.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from nanodictate.core.errors import NanodictateError

__all__ = [
    "MODIFIERS",
    "FocusTracker",
    "Hotkey",
    "HotkeyBackend",
    "HotkeyEventCallback",
    "HotkeyTakenError",
    "HotkeysUnavailableError",
    "KeyboardOutput",
    "KeyboardOutputUnavailableError",
    "PlatformBackends",
    "WindowInfo",
]

# ---------------------------------------------------------------------------------------------
# Hotkeys
# ---------------------------------------------------------------------------------------------

#: Modifier names in the order they are shown ("Ctrl+Shift+Alt+Super+Key").
MODIFIERS: tuple[str, ...] = ("ctrl", "shift", "alt", "super")

_MODIFIER_ALIASES = {
    "ctrl": "ctrl",
    "control": "ctrl",
    "ctl": "ctrl",
    "shift": "shift",
    "alt": "alt",
    "option": "alt",
    "super": "super",
    "win": "super",
    "windows": "super",
    "cmd": "super",
    "command": "super",
}

_MODIFIER_LABELS = {"ctrl": "Ctrl", "shift": "Shift", "alt": "Alt", "super": "Super"}

# Case-insensitive spellings → the X keysym name the key is stored as.
_KEY_ALIASES = {
    "space": "space",
    "spacebar": "space",
    "esc": "Escape",
    "escape": "Escape",
    "enter": "Return",
    "return": "Return",
    "tab": "Tab",
    "backspace": "BackSpace",
    "delete": "Delete",
    "del": "Delete",
    "insert": "Insert",
    "ins": "Insert",
    "home": "Home",
    "end": "End",
    "pageup": "Prior",
    "page_up": "Prior",
    "pgup": "Prior",
    "prior": "Prior",
    "pagedown": "Next",
    "page_down": "Next",
    "pgdown": "Next",
    "next": "Next",
    "up": "Up",
    "down": "Down",
    "left": "Left",
    "right": "Right",
    "pause": "Pause",
    "break": "Pause",
    "scrolllock": "Scroll_Lock",
    "scroll_lock": "Scroll_Lock",
    "capslock": "Caps_Lock",
    "caps_lock": "Caps_Lock",
    "print": "Print",
    "printscreen": "Print",
    "menu": "Menu",
    "plus": "plus",
    "minus": "minus",
    "equal": "equal",
    "comma": "comma",
    "period": "period",
    "slash": "slash",
    "backslash": "backslash",
    "semicolon": "semicolon",
    "apostrophe": "apostrophe",
    "grave": "grave",
    "bracketleft": "bracketleft",
    "bracketright": "bracketright",
}

# Single punctuation characters → keysym names.
_CHAR_KEYS = {
    " ": "space",
    "+": "plus",
    "-": "minus",
    "=": "equal",
    ",": "comma",
    ".": "period",
    "/": "slash",
    "\\": "backslash",
    ";": "semicolon",
    "'": "apostrophe",
    "`": "grave",
    "[": "bracketleft",
    "]": "bracketright",
}

# Keysym name → how it is shown to the user, where that differs from the name itself.
_KEY_LABELS = {
    "space": "Space",
    "Prior": "PageUp",
    "Next": "PageDown",
    "BackSpace": "Backspace",
    "Return": "Enter",
    "Scroll_Lock": "ScrollLock",
    "Caps_Lock": "CapsLock",
    **{name: char for char, name in _CHAR_KEYS.items() if char != " "},
}

_FUNCTION_KEY = re.compile(r"^f([1-9]|[12][0-9]|3[0-5])$", re.IGNORECASE)
_KEYSYM_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def _normalize_key(token: str) -> str:
    if len(token) == 1:
        if token.isascii() and token.isalpha():
            return token.lower()
        if token.isalpha():
            raise ValueError(f"{token!r}: write the key's X name instead (e.g. 'adiaeresis' for ä)")
        if token.isdigit():
            return token
        if token in _CHAR_KEYS:
            return _CHAR_KEYS[token]
        raise ValueError(f"{token!r} cannot be used as a hotkey key")
    if _FUNCTION_KEY.match(token):
        return token.upper()
    alias = _KEY_ALIASES.get(token.lower())
    if alias is not None:
        return alias
    if _KEYSYM_NAME.match(token):
        # Another X keysym name (e.g. "KP_Enter", "XF86AudioPlay"): kept as written; the
        # backend checks that it exists when the hotkey is registered.
        return token
    raise ValueError(f"{token!r} is not a key name")


@dataclass(frozen=True)
class Hotkey:
    """A key plus modifiers, e.g. `Hotkey.parse("ctrl+alt+space")`.

    `key` is an X keysym-style name: "F9", "space", "a", "Escape", "Return", "Prior"…
    `modifiers` is a subset of {"ctrl", "shift", "alt", "super"}.
    """

    key: str
    modifiers: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        unknown = set(self.modifiers) - set(MODIFIERS)
        if unknown:
            raise ValueError(
                f"unknown hotkey modifier(s) {sorted(unknown)}; use {', '.join(MODIFIERS)}"
            )
        if not self.key:
            raise ValueError("a hotkey needs a key")

    @classmethod
    def parse(cls, text: str) -> Hotkey:
        """Parse "ctrl+alt+space", "Ctrl+Shift+F9", "super+a", "F9" (case-insensitive).

        Raises ValueError with a message that says what is wrong.
        """
        original = text
        text = text.strip()
        if not text:
            raise ValueError("the hotkey is empty")
        trailing_plus = text.endswith("++") or text == "+"
        if trailing_plus:
            text = text[:-1] + "plus" if text != "+" else "plus"
        parts = [part.strip() for part in text.split("+")]
        if any(not part for part in parts):
            raise ValueError(f"{original!r} is not a hotkey: empty part between '+' signs")
        *modifier_parts, key_part = parts
        modifiers: set[str] = set()
        for part in modifier_parts:
            name = _MODIFIER_ALIASES.get(part.lower())
            if name is None:
                raise ValueError(
                    f"{original!r} is not a hotkey: {part!r} is not a modifier "
                    f"(use {', '.join(MODIFIERS)})"
                )
            if name in modifiers:
                raise ValueError(f"{original!r} is not a hotkey: {part!r} appears twice")
            modifiers.add(name)
        if key_part.lower() in _MODIFIER_ALIASES:
            raise ValueError(
                f"{original!r} is not a hotkey: it has only modifiers; add a key such as F9"
            )
        try:
            key = _normalize_key(key_part)
        except ValueError as exc:
            raise ValueError(f"{original!r} is not a hotkey: {exc}") from None
        return cls(key=key, modifiers=frozenset(modifiers))

    def __str__(self) -> str:
        labels = [_MODIFIER_LABELS[m] for m in MODIFIERS if m in self.modifiers]
        if len(self.key) == 1:
            key_label = self.key.upper()
        else:
            key_label = _KEY_LABELS.get(self.key, self.key[:1].upper() + self.key[1:])
        return "+".join([*labels, key_label])


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
# Keyboard output
# ---------------------------------------------------------------------------------------------


class KeyboardOutputUnavailableError(NanodictateError):
    """No way to send keystrokes here; the text stays on the clipboard for the user to paste."""


@runtime_checkable
class KeyboardOutput(Protocol):
    """Synthetic keystrokes into the focused window.

    Paste is the default way text reaches a window (clipboard + `send_paste`): it is exact for
    every script. `type_text` is a fallback; see each backend for its limits with non-ASCII.

    Backends of desktops with a PRIMARY selection (X11) may also have `send_primary_paste()`:
    Shift+Insert, for the windows `WindowInfo.pastes_primary` marks. The text output checks
    for it at run time (`nanodictate.core.text_output.PrimaryPasteKeyboard`).
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


# ---------------------------------------------------------------------------------------------
# Focus
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WindowInfo:
    """A top-level window as the focus tracker saw it.

    `id` is the platform's window handle (X11 window id, Windows HWND); `app_class` is X11's
    WM_CLASS class part (or the process/app name elsewhere); `is_terminal` says whether a paste
    there needs Ctrl+Shift+V; `pastes_primary` that it needs the PRIMARY selection and
    Shift+Insert instead (xterm and its kin, X11 only).
    """

    id: int
    title: str
    app_class: str
    is_terminal: bool
    pastes_primary: bool = False


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
