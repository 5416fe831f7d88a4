"""The words of each language's text steps, read from ``words/<language>.toml``.

The lists are data a contributor extends without touching code (``words/en.toml`` explains
the format). They ship as package data and are read once per language. A language without a
file has no commands, fillers or spoken punctuation: its text passes through unchanged.
"""

from __future__ import annotations

import enum
import functools
import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any

_PACKAGE = "nanodictate.core.text_steps"
# What the model writes around words: spaces and the punctuation of spaced and CJK scripts.
PUNCTUATION = " \t.,!?;:…。，、！？；：\"'“”‘’«»"
_PUNCTUATION_CLASS = "[" + re.escape(PUNCTUATION) + "]"


class Command(enum.Enum):
    NEW_LINE = "new_line"
    NEW_PARAGRAPH = "new_paragraph"
    DELETE_THAT = "delete_that"


# Compared by identity: each language is read once, and its compiled patterns are cached by it.
@dataclass(frozen=True, eq=False)
class WordList:
    language: str
    spaced: bool
    fillers: tuple[str, ...]
    commands: dict[Command, tuple[str, ...]]
    punctuation: dict[str, tuple[str, ...]]  # mark → the phrases that say it

    def phrase_pattern(self, phrase: str, *, within_text: bool = False) -> str:
        """A regex for `phrase` as a whole phrase: its words separated by any spaces or
        hyphens, not inside a longer word.

        Scripts without spaces have no word edges a regex can see. There a command must
        border punctuation, a space or the text's edge; fillers and spoken punctuation
        (`within_text`, both switched on by the user) match anywhere."""
        words = phrase.split()
        body = r"[\s\-]+".join(re.escape(word) for word in words)
        if self.spaced:
            return rf"(?<!\w){body}(?!\w)"
        if within_text:
            return body
        return rf"(?:(?<={_PUNCTUATION_CLASS})|^){body}(?={_PUNCTUATION_CLASS}|$)"


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise ValueError(f"{where} must be a list of phrases")
    # Longest first, so "new paragraph" wins over a shorter phrase it starts with.
    return tuple(sorted(value, key=len, reverse=True))


def parse_word_list(language: str, text: str) -> WordList:
    """A word list from a TOML file's text; ValueError says what is wrong with it."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"words/{language}.toml: {error}") from error
    spaced = data.get("spaced", True)
    if not isinstance(spaced, bool):
        raise ValueError(f"words/{language}.toml: spaced must be true or false")
    commands_table = data.get("commands", {})
    unknown = set(commands_table) - {command.value for command in Command}
    if unknown:
        raise ValueError(f"words/{language}.toml: unknown commands {sorted(unknown)}")
    commands = {
        Command(name): _strings(phrases, f"words/{language}.toml commands.{name}")
        for name, phrases in commands_table.items()
    }
    punctuation = {
        mark: _strings(phrases, f"words/{language}.toml punctuation.{mark!r}")
        for mark, phrases in data.get("punctuation", {}).items()
    }
    fillers = _strings(data.get("fillers", []), f"words/{language}.toml fillers")
    return WordList(language, spaced, fillers, commands, punctuation)


@functools.cache
def word_list(language: str) -> WordList | None:
    """The shipped word list of `language` (an ISO code), None when there is none."""
    resource = resources.files(_PACKAGE) / "words" / f"{language.lower()}.toml"
    if not resource.is_file():
        return None
    return parse_word_list(language, resource.read_text(encoding="utf-8"))


def shipped_languages() -> list[str]:
    """The languages that have a word list in the package."""
    folder = resources.files(_PACKAGE) / "words"
    return sorted(
        entry.name.removesuffix(".toml")
        for entry in folder.iterdir()
        if entry.name.endswith(".toml")
    )
