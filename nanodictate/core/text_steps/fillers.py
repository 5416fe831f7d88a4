"""Filler words ("um", "uh", "嗯", "呃" …) taken out of the text; off by default.

A filler goes with the commas the model put around it ("I think, um, that" → "I think that").
When it opened the text, the next word takes over its capital letter.
"""

from __future__ import annotations

import functools
import re

from nanodictate.core.text_steps.word_lists import WordList

_COMMA = r"[,，、]"


@functools.cache
def _pattern(words: WordList) -> re.Pattern[str] | None:
    if not words.fillers:
        return None
    alternatives = "|".join(
        words.phrase_pattern(filler, within_text=True) for filler in words.fillers
    )
    # Repeats ("呃呃", "um, um") go in one match.
    one = rf"(?:{alternatives})"
    return re.compile(
        rf"(?:{_COMMA}\s*)?{one}(?:\s*{_COMMA}?\s*{one})*{_COMMA}?",
        re.IGNORECASE,
    )


def remove_fillers(text: str, words: WordList) -> str:
    pattern = _pattern(words)
    if pattern is None:
        return text
    capital = text[:1].isupper()
    cleaned = pattern.sub("", text)
    cleaned = re.sub(r"[ \t]{2,}", " ", cleaned)
    # A filler said as its own sentence leaves its full stop: "I went. Um. Then" → "I went. . Then".
    cleaned = re.sub(r"([.!?。！？])\s+[.。](?=\s|$)", r"\1", cleaned)
    cleaned = re.sub(r"[ \t]+([,.!?;:])", r"\1", cleaned)
    # What a filler that opened a sentence leaves: "Um. So" → ". So".
    cleaned = cleaned.lstrip(" \t,，、.。…!?！？").rstrip(" \t,，、")
    if not any(character.isalnum() for character in cleaned):
        return ""  # only fillers were said
    if capital and cleaned[:1].islower():
        cleaned = cleaned[0].upper() + cleaned[1:]
    return cleaned
