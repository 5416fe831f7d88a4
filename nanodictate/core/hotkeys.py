"""The hotkey grammar: "ctrl+alt+space", "Ctrl+Shift+F9", "super+a", "F9" as a `Hotkey`.

Pure logic, no OS: the settings window checks what the user typed with it, the UI's hotkey
registration turns the settings into `Hotkey`s, and each platform's hotkey backend
(`nanodictate.platform`) grabs them. Keys are named as X keysyms ("space", "Prior", "F9");
a backend elsewhere translates those names to its own key codes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["MODIFIERS", "Hotkey"]

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
