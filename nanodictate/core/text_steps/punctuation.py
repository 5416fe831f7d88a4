"""Spoken punctuation: "comma", "question mark", "逗号" … become the mark itself.

Off by default, and unlike the voice commands it works anywhere in the text, because that is
where punctuation is spoken ("Hello comma how are you question mark"). The model often writes
its own punctuation around the spoken word ("Hello, comma, how are you?"): the spoken mark
replaces it rather than doubling it.
"""

from __future__ import annotations

import functools
import re

from nanodictate.core.text_steps.word_lists import WordList

# The marks the model writes around a spoken one; the spoken mark takes their place.
_MODEL_MARKS = "[" + re.escape(".,!?;:…。，、！？；：") + "]"


@functools.cache
def _patterns(words: WordList) -> tuple[tuple[str, re.Pattern[str]], ...]:
    pairs = sorted(
        ((mark, phrase) for mark, phrases in words.punctuation.items() for phrase in phrases),
        key=lambda pair: len(pair[1]),
        reverse=True,
    )
    return tuple(
        (
            mark,
            re.compile(
                rf"(?:\s*{_MODEL_MARKS})*\s*{words.phrase_pattern(phrase, within_text=True)}"
                rf"{_MODEL_MARKS}*",
                re.IGNORECASE,
            ),
        )
        for mark, phrase in pairs
    )


def apply_spoken_punctuation(text: str, words: WordList) -> str:
    for mark, pattern in _patterns(words):

        def replace(match: re.Match[str], mark: str = mark) -> str:
            following = match.string[match.end() : match.end() + 1]
            # "Hello comma how" → "Hello, how": a spaced script keeps a space after the mark.
            if words.spaced and following.isalnum():
                return mark + " "
            return mark

        text = pattern.sub(replace, text)
    return text.strip(" \t")
