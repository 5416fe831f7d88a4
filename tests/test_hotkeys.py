"""The hotkey grammar (`core.hotkeys`): parsing what the user writes, and showing it back."""

from __future__ import annotations

import pytest

from nanodictate.core.hotkeys import Hotkey


@pytest.mark.parametrize(
    ("text", "key", "modifiers", "shown"),
    [
        ("ctrl+alt+space", "space", {"ctrl", "alt"}, "Ctrl+Alt+Space"),
        ("Ctrl + Shift + f9", "F9", {"ctrl", "shift"}, "Ctrl+Shift+F9"),
        ("SUPER+A", "a", {"super"}, "Super+A"),
        ("f12", "F12", set(), "F12"),
        ("control+esc", "Escape", {"ctrl"}, "Ctrl+Escape"),
        ("alt+PageUp", "Prior", {"alt"}, "Alt+PageUp"),
        ("ctrl++", "plus", {"ctrl"}, "Ctrl++"),
        ("shift+XF86AudioPlay", "XF86AudioPlay", {"shift"}, "Shift+XF86AudioPlay"),
    ],
)
def test_hotkey_parse_and_str(text: str, key: str, modifiers: set[str], shown: str) -> None:
    hotkey = Hotkey.parse(text)
    assert hotkey == Hotkey(key, frozenset(modifiers))
    assert str(hotkey) == shown
    assert Hotkey.parse(str(hotkey)) == hotkey


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("ctrl+", "empty part"),
        ("ctrl+shift", "only modifiers"),
        ("hyper+a", "'hyper' is not a modifier"),
        ("ctrl+ctrl+a", "appears twice"),
        ("ctrl+ä", "X name"),
        ("ctrl+§", "cannot be used"),
        ("ctrl+not a key", "not a key name"),
    ],
)
def test_hotkey_parse_errors_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Hotkey.parse(text)
