"""The user's replacement rules, applied to every transcription, in their order.

One rule a line, as the settings window's list editor keeps them:

- ``wrong => right``: the words ``wrong`` (whole words, any case) become ``right``, e.g.
  ``nano dictate => nanodictate`` for a name the model keeps splitting;
- ``/pattern/ => replacement``: a Python regular expression, case-sensitive, ``\\1`` for a
  group; ``/pattern/i`` ignores case;
- ``wrong =>`` with nothing after the arrow deletes the words; a line starting with ``#`` is
  a comment.

A rule that cannot work (no arrow, a regular expression that does not compile) is left out
and described in words for the user; the other rules still apply. Rules are user settings,
not dictated text, but they may hold names: they are not written to the log either.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

ARROW = "=>"
_REGEX_RULE = re.compile(r"/.+/[a-z]*")
# Scripts written without spaces between words: there a rule matches inside a run of text.
_UNSPACED_SCRIPTS = ("CJK", "HIRAGANA", "KATAKANA", "THAI", "LAO", "KHMER", "MYANMAR")


@dataclass(frozen=True)
class Rule:
    pattern: re.Pattern[str]
    template: str  # for `re.sub`: a plain rule's backslashes are escaped, so they stay as written


@dataclass(frozen=True)
class Rules:
    rules: tuple[Rule, ...]
    problems: tuple[str, ...]  # one sentence for the user per line that was left out


def _word_edge(character: str) -> bool:
    """Whether a plain rule that starts or ends with `character` needs a word edge there."""
    if not (character.isalnum() or character == "_"):
        return False
    name = unicodedata.name(character, "")
    return not name.startswith(_UNSPACED_SCRIPTS)


def _plain_rule(wrong: str, right: str) -> Rule:
    body = re.escape(wrong)
    if _word_edge(wrong[0]):
        body = r"(?<!\w)" + body
    if _word_edge(wrong[-1]):
        body += r"(?!\w)"
    if not right:
        body = r"[ \t]*" + body  # a deleted word takes its space along
    return Rule(re.compile(body, re.IGNORECASE), right.replace("\\", "\\\\"))


def _regex_rule(left: str, right: str, number: int) -> Rule:
    """A /pattern/ rule; ValueError with the user's sentence when it cannot work."""
    body, _slash, flags = left[1:].rpartition("/")
    if flags not in ("", "i"):
        raise ValueError(
            f"Replacement rule {number}: after the closing / only i (ignore case) may follow."
        )
    try:
        pattern = re.compile(body, re.IGNORECASE if flags else 0)
        pattern.sub(right, "")  # checks the replacement's \1 groups against the pattern
    except re.error as error:
        raise ValueError(
            f"Replacement rule {number}: {left} is not a valid regular expression ({error})."
        ) from error
    return Rule(pattern, right)


@functools.cache
def parse_rules(lines: tuple[str, ...]) -> Rules:
    """The rules of the setting's lines (cached: the lines change rarely, dictations often)."""
    rules: list[Rule] = []
    problems: list[str] = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        left, arrow, right = text.partition(ARROW)
        left, right = left.strip(), right.strip()
        try:
            if not arrow or not left:
                raise ValueError(
                    f'Replacement rule {number} ("{text}") is not of the form '
                    f'"wrong {ARROW} right".'
                )
            if _REGEX_RULE.fullmatch(left):
                rules.append(_regex_rule(left, right, number))
            else:
                rules.append(_plain_rule(left, right))
        except ValueError as error:
            problems.append(str(error))
    return Rules(tuple(rules), tuple(problems))


def replacement_problems(lines: list[str]) -> list[str]:
    """What is wrong with the rules, for the settings window to show before it saves them."""
    return list(parse_rules(tuple(lines)).problems)


def apply_replacements(text: str, rules: Rules) -> str:
    for rule in rules.rules:
        text = rule.pattern.sub(rule.template, text)
    return text.strip(" \t")
