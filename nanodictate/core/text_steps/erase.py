"""When "delete that" may take back the previous dictation, and how many keys it takes.

The text output deletes the previous dictation with Backspace, one press per character it put
there. That is only safe while the text is still the last thing in that window, and the app
cannot see what the user typed since. So it takes back only:

- the last text it pasted or typed itself, once, and not text already sent with Enter;
- into the same window the new dictation started in (a known window, not a terminal: what was
  pasted into a shell may already have run, and Backspace would eat the prompt instead);
- within `ERASE_WITHIN_S` of that paste, and at most `MAX_ERASE_CHARACTERS` characters.

It cannot work in copy-only mode (nothing was pasted), for recovered recordings, on desktops
without a way to press Backspace, or after the user typed in that window within the time
limit (that typing would be deleted instead: the limit keeps the chance small).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from nanodictate.core.ports import WindowInfo

ERASE_WITHIN_S = 60.0
# Longer texts are better taken back with the window's own Undo than a storm of keys.
MAX_ERASE_CHARACTERS = 2000


@dataclass(frozen=True)
class LastOutput:
    """The text the app put into a window last: where, how long, when."""

    window: WindowInfo | None
    characters: int
    at: float


def characters_to_erase(text: str) -> int:
    """Backspace presses that delete `text`: one per character as editors count them, where
    an accent written as its own code point still goes with its letter when it can."""
    return len(unicodedata.normalize("NFC", text))


def erase_refusal(last: LastOutput | None, target: WindowInfo | None, now: float) -> str | None:
    """Why the previous dictation cannot be deleted (a sentence for the user), or None."""
    if last is None:
        return "There is no dictation the app can still take back."
    if target is None or last.window is None:
        return "This desktop cannot tell which window the text went to."
    if last.window.id != target.id:
        return "The last dictation went to another window."
    if target.is_terminal:
        return "Text pasted into a terminal is not taken back."
    if now - last.at > ERASE_WITHIN_S:
        return f"The last dictation is more than {ERASE_WITHIN_S:.0f} seconds old."
    if last.characters > MAX_ERASE_CHARACTERS:
        return "The last dictation is too long to take back; use the window's Undo."
    return None
