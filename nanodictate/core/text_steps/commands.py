"""Voice commands said at the start or the end of a dictation: "new line", "new paragraph",
"delete that".

Only whole phrases at the edges count, repeatedly ("… new line new line"), so a sentence that
merely contains the words ("Start a new line here.") is left as it was. Case and the
punctuation the model writes around a command ("Hello. New line.") are ignored.

Commands take effect in the order they were said:
- "new line" adds a line break, "new paragraph" two;
- "delete that" drops what this dictation said before it; said first (or alone) it asks to
  delete the previous dictation instead, which the text output does only where it safely can
  (`core.text_steps.erase`).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from nanodictate.core.text_steps.word_lists import PUNCTUATION, Command, WordList

LINE_BREAKS = {Command.NEW_LINE: "\n", Command.NEW_PARAGRAPH: "\n\n"}
# Left by the model where the speaker paused before a command ("Dear John, new line"): a
# comma there is not part of the text.
_PAUSE_MARKS = " \t,，、"


@dataclass(frozen=True)
class Commanded:
    text: str
    erase_previous: bool = False


@dataclass(frozen=True)
class _EdgePatterns:
    leading: tuple[tuple[Command, re.Pattern[str]], ...]
    trailing: tuple[tuple[Command, re.Pattern[str]], ...]


@functools.cache
def _patterns(words: WordList) -> _EdgePatterns:
    edge = "[" + re.escape(PUNCTUATION) + "]*"
    by_length = sorted(
        ((command, phrase) for command, phrases in words.commands.items() for phrase in phrases),
        key=lambda pair: len(pair[1]),
        reverse=True,
    )
    leading = tuple(
        (command, re.compile(rf"^{edge}{words.phrase_pattern(phrase)}{edge}", re.IGNORECASE))
        for command, phrase in by_length
    )
    trailing = tuple(
        (command, re.compile(rf"{words.phrase_pattern(phrase)}{edge}$", re.IGNORECASE))
        for command, phrase in by_length
    )
    return _EdgePatterns(leading, trailing)


def _split_edges(text: str, words: WordList) -> tuple[list[Command], str, list[Command]]:
    """(commands said first, the text between, commands said last), each in spoken order."""
    patterns = _patterns(words)
    trailing: list[Command] = []
    rest = text
    while rest:
        match = next(
            ((c, m) for c, p in patterns.trailing if (m := p.search(rest)) is not None), None
        )
        if match is None:
            break
        command, found = match
        trailing.insert(0, command)
        rest = rest[: found.start()].rstrip(_PAUSE_MARKS)
    leading: list[Command] = []
    while rest:
        match = next(
            ((c, m) for c, p in patterns.leading if (m := p.match(rest)) is not None), None
        )
        if match is None:
            break
        command, found = match
        leading.append(command)
        rest = rest[found.end() :]
    return leading, rest, trailing


def apply_commands(text: str, words: WordList) -> Commanded:
    leading, rest, trailing = _split_edges(text, words)
    if not leading and not trailing:
        return Commanded(text)
    built = ""
    erase_previous = False
    for command in [*leading, None, *trailing]:
        if command is None:
            built += rest
        elif command is Command.DELETE_THAT:
            if built:
                built = ""  # what this dictation said so far
            else:
                erase_previous = True
        else:
            built += LINE_BREAKS[command]
    return Commanded(built, erase_previous)
