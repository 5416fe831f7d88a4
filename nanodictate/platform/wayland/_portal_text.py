"""How nanodictate's hotkeys are put into words for the GlobalShortcuts portal.

The desktop, not us, picks the actual key: a `Hotkey` is only offered as the
`preferred_trigger` (XDG shortcuts-spec format), next to a description the desktop shows in
its shortcut dialog and settings. A refused `BindShortcuts` becomes a message for the user.
"""

from __future__ import annotations

from nanodictate.core.hotkeys import Hotkey

#: Shortcuts-spec modifier names, in the order they are written.
_TRIGGER_MODIFIERS = (("ctrl", "CTRL"), ("alt", "ALT"), ("shift", "SHIFT"), ("super", "LOGO"))

_DESCRIPTIONS = {
    "dictate": "Dictate (hold to talk)",
    "toggle": "Start/stop dictation",
    "cancel": "Cancel the dictation",
    "cancel:held": "Cancel the dictation (while the hotkey is held)",
}


def hotkey_to_trigger(hotkey: Hotkey) -> str:
    """`Hotkey` → XDG shortcuts-spec trigger, e.g. ctrl+alt+space → "CTRL+ALT+space".

    The key is kept as its X keysym name, which is what xkbcommon (and the spec) use.
    """
    parts = [label for name, label in _TRIGGER_MODIFIERS if name in hotkey.modifiers]
    return "+".join([*parts, hotkey.key])


def describe_hotkey(hotkey_id: str) -> str:
    """What the desktop's dialog and settings show for the shortcut `hotkey_id`."""
    if hotkey_id in _DESCRIPTIONS:
        return _DESCRIPTIONS[hotkey_id]
    if hotkey_id.startswith("language:"):
        return f"Dictate in {hotkey_id.split(':', 1)[1]} (hold to talk)"
    return f"Nanodictate: {hotkey_id}"


def refusal_message(method: str, code: int) -> str:
    """The user's message for a `Response` with `code` != 0 to the portal's `method`."""
    if method == "BindShortcuts":
        if code == 1:
            return (
                "The desktop's shortcut dialog was cancelled, so no global hotkey is bound; "
                "bind `nanodictate toggle` in the desktop settings or try again"
            )
        return (
            "The desktop refused to bind the global hotkeys (portal response "
            f"{code}); bind `nanodictate toggle` to a key in the desktop settings instead"
        )
    return f"The desktop portal refused {method} (response {code})"
