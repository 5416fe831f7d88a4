"""The text steps after transcription (nanodictate.core.text_steps), as text in → text out:
voice commands and spoken punctuation in English and Chinese, with ordinary sentences that
contain the same words left alone; filler removal; the user's replacement rules; the shipped
word lists."""

from __future__ import annotations

import pytest

from nanodictate.core.text_steps import StepsOutcome, TextStepsConfig, apply_text_steps
from nanodictate.core.text_steps.replacements import replacement_problems
from nanodictate.core.text_steps.word_lists import (
    Command,
    parse_word_list,
    shipped_languages,
    word_list,
)

DEFAULTS = TextStepsConfig()
EVERYTHING = TextStepsConfig(spoken_punctuation=True, remove_fillers=True, auto_submit=True)


def steps(text: str, language: str = "en", config: TextStepsConfig = DEFAULTS) -> StepsOutcome:
    return apply_text_steps(text, language, config)


# ------------------------------------------------------------------------- voice commands


@pytest.mark.parametrize(
    ("said", "language", "pasted"),
    [
        ("Hello world. New line.", "en", "Hello world.\n"),
        ("Dear John, new line", "en", "Dear John\n"),  # the model's pause comma goes
        ("New paragraph. Thanks for the report.", "en", "\n\nThanks for the report."),
        ("new line", "en", "\n"),
        ("NEWLINE!", "en", "\n"),
        ("First point new line new line", "en", "First point\n\n"),
        ("New paragraph. Dear John, new line.", "en", "\n\nDear John\n"),
        ("今天天气很好。换行", "zh", "今天天气很好。\n"),
        ("另起一段。各位同事，", "zh", "\n\n各位同事，"),
        ("換行。", "zh", "\n"),
    ],
)
def test_line_commands_at_the_start_or_end_become_line_breaks(
    said: str, language: str, pasted: str
) -> None:
    assert steps(said, language) == StepsOutcome(pasted)


@pytest.mark.parametrize(
    ("sentence", "language"),
    [
        ("Start a new line here and continue.", "en"),
        ("Please scratch that idea from the list.", "en"),
        ("The delete that button is broken.", "en"),
        ("Each newline character counts.", "en"),
        ("We need a newlines setting", "en"),  # not the whole word
        ("Write in a new paragraph style", "en"),
        ("I put a comma there.", "en"),
        ("这里需要换行。", "zh"),  # a sentence that ends with the word, not a command
        ("我要换行", "zh"),
        ("请看下一行的内容。", "zh"),
        ("这个逗号用错了。", "zh"),
    ],
)
def test_ordinary_sentences_containing_the_words_are_left_alone(
    sentence: str, language: str
) -> None:
    assert steps(sentence, language) == StepsOutcome(sentence)


def test_commands_are_off_when_switched_off() -> None:
    off = TextStepsConfig(voice_commands=False)
    assert steps("Hello world. New line.", config=off) == StepsOutcome("Hello world. New line.")
    assert steps("Delete that.", config=off) == StepsOutcome("Delete that.")


@pytest.mark.parametrize(
    ("said", "language", "expected"),
    [
        ("Delete that.", "en", StepsOutcome("", erase_previous=True)),
        ("scratch that", "en", StepsOutcome("", erase_previous=True)),
        ("删除上一句。", "zh", StepsOutcome("", erase_previous=True)),
        # Said first: take back the previous dictation, then paste the rest.
        ("Scratch that. Meet me at five.", "en", StepsOutcome("Meet me at five.", True)),
        # Said last: this dictation drops what it said.
        ("Meet me at four, scratch that.", "en", StepsOutcome("")),
        ("我们四点见，删除上一句", "zh", StepsOutcome("")),
        ("Meet me at four. Scratch that. New line.", "en", StepsOutcome("\n")),
    ],
)
def test_delete_that(said: str, language: str, expected: StepsOutcome) -> None:
    assert steps(said, language) == expected


def test_a_language_without_a_word_list_passes_through() -> None:
    assert word_list("pl") is None
    assert steps("Nowa linia. New line.", "pl", EVERYTHING) == StepsOutcome(
        "Nowa linia. New line.", submit=True
    )


# ------------------------------------------------------------------- spoken punctuation

PUNCTUATION = TextStepsConfig(spoken_punctuation=True)


@pytest.mark.parametrize(
    ("said", "language", "pasted"),
    [
        ("Hello comma how are you question mark", "en", "Hello, how are you?"),
        # The model's own marks around the spoken one are replaced, not doubled.
        ("Hello, comma, how are you? Question mark.", "en", "Hello, how are you?"),
        ("Is it ready question mark new line", "en", "Is it ready?\n"),
        ("Great exclamation point", "en", "Great!"),
        ("你好逗号今天怎么样问号", "zh", "你好，今天怎么样？"),
        ("好的句号", "zh", "好的。"),
    ],
)
def test_spoken_punctuation(said: str, language: str, pasted: str) -> None:
    assert steps(said, language, PUNCTUATION).text == pasted


def test_spoken_punctuation_is_off_by_default() -> None:
    assert steps("Hello comma how are you question mark").text == (
        "Hello comma how are you question mark"
    )


# -------------------------------------------------------------------------------- fillers

FILLERS = TextStepsConfig(remove_fillers=True)


@pytest.mark.parametrize(
    ("said", "language", "pasted"),
    [
        ("Um, I think, uh, we should go.", "en", "I think we should go."),
        ("I think um that works", "en", "I think that works"),
        ("So, uhm. Let's start.", "en", "So. Let's start."),
        ("I went. Um. Then home.", "en", "I went. Then home."),
        ("Um.", "en", ""),
        ("Hmm, umm, okay", "en", "Okay"),
        ("嗯，我觉得可以。", "zh", "我觉得可以。"),
        ("我觉得呃呃可以", "zh", "我觉得可以"),
        ("嗯。", "zh", ""),
    ],
)
def test_fillers_are_removed_when_switched_on(said: str, language: str, pasted: str) -> None:
    assert steps(said, language, FILLERS).text == pasted


@pytest.mark.parametrize(
    "sentence",
    ["Um, I think we should go.", "The drummer hummed along."],
)
def test_fillers_stay_by_default_and_words_containing_them_always(sentence: str) -> None:
    assert steps(sentence).text == sentence
    if "drummer" in sentence:
        assert steps(sentence, config=FILLERS).text == sentence


def test_fillers_then_a_command() -> None:
    assert steps("Um, new line.", config=FILLERS).text == "\n"


# --------------------------------------------------------------------------- replacements


def rules(*lines: str) -> TextStepsConfig:
    return TextStepsConfig(replacements=lines)


def test_plain_replacement_matches_whole_words_in_any_case() -> None:
    config = rules("nano dictate => nanodictate", "cat => dog")
    assert steps("Nano Dictate and a category of cat.", config=config).text == (
        "nanodictate and a category of dog."
    )


def test_plain_replacement_in_chinese_matches_inside_the_text() -> None:
    assert steps("我用纳诺听写工作。", "zh", rules("纳诺听写 => nanodictate")).text == (
        "我用nanodictate工作。"
    )


def test_regex_replacement_with_groups_and_flags() -> None:
    config = rules(r"/(\d+) percent/ => \1%", "/^hello/i => Hi", r"/\s+$/ =>")
    assert steps("HELLO, it is 50 percent done", config=config).text == "Hi, it is 50% done"


def test_plain_replacement_text_is_inserted_as_written() -> None:
    assert steps("the path", config=rules(r"path => C:\new\1")).text == r"the C:\new\1"


def test_an_empty_right_side_deletes_and_comments_are_ignored() -> None:
    config = rules("# a comment line", "basically =>")
    assert steps("It is basically done", config=config).text == "It is done"
    assert steps("Basically, it works", config=config).text == ", it works"


def test_rules_run_in_order_before_the_commands() -> None:
    assert steps("one two", config=rules("one => two", "two => three")).text == "three three"
    # A rule can give a command another phrase.
    assert steps("First item, next row", config=rules("next row => new line")).text == (
        "First item\n"
    )


def test_invalid_rules_are_skipped_with_a_message_and_the_others_apply() -> None:
    config = rules("/teh(/ => the", "no arrow here", r"/(a)/ => \2", "/x/g => y", "teh => the")
    outcome = steps("teh end", config=config)
    assert outcome.text == "the end"
    assert len(outcome.problems) == 4
    assert outcome.problems[0].startswith("Replacement rule 1: /teh(/ is not a valid regular")
    assert '"no arrow here"' in outcome.problems[1] and "wrong => right" in outcome.problems[1]
    assert "rule 3" in outcome.problems[2] and "invalid group reference" in outcome.problems[2]
    assert "rule 4" in outcome.problems[3]
    assert replacement_problems(["a => b", "/(/ => c"]) == [
        "Replacement rule 2: /(/ is not a valid regular expression "
        "(missing ), unterminated subpattern at position 0)."
    ]


# ----------------------------------------------------------------------------- auto-submit


def test_auto_submit_asks_for_enter_only_when_there_is_text() -> None:
    submit = TextStepsConfig(auto_submit=True)
    assert steps("Send it.", config=submit) == StepsOutcome("Send it.", submit=True)
    assert steps("Scratch that.", config=submit) == StepsOutcome("", erase_previous=True)
    assert not steps("Send it.").submit


def test_everything_on_together() -> None:
    said = "Um, scratch that. Nano dictate is ready comma I think question mark new line"
    config = TextStepsConfig(
        spoken_punctuation=True,
        remove_fillers=True,
        auto_submit=True,
        replacements=("nano dictate => nanodictate",),
    )
    outcome = steps(said, config=config)
    assert outcome == StepsOutcome("nanodictate is ready, I think?\n", True, True)


# ---------------------------------------------------------------------------- word lists


def test_every_shipped_word_list_parses_and_has_the_commands() -> None:
    languages = shipped_languages()
    assert {"en", "zh"} <= set(languages)
    for language in languages:
        words = word_list(language)
        assert words is not None and set(words.commands) == set(Command), language
        assert words.punctuation and words.fillers, language


def test_a_broken_word_list_says_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="unknown commands"):
        parse_word_list("xx", "[commands]\nnew_lines = ['x']\n")
    with pytest.raises(ValueError, match="list of phrases"):
        parse_word_list("xx", "fillers = 'um'\n")
    with pytest.raises(ValueError, match=r"words/xx\.toml"):
        parse_word_list("xx", "spaced = \n")
