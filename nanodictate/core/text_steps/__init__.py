"""What happens to the text between the transcription and the paste: one pipeline, each step
a small module, each switchable.

In order:
1. `fillers`: "um", "uh", "嗯", "呃" … taken out (off by default);
2. `replacements`: the user's rules, plain or regular expressions — before the commands, so a
   rule can also teach a command another phrase ("next row => new line");
3. `punctuation`: "comma", "question mark" … said anywhere (off by default);
4. `commands`: "new line", "new paragraph", "delete that", said at the start or the end;
5. auto-submit: Enter after the paste (off by default), unless nothing is left to send.

The word lists are per language (`word_lists`, data files in ``words/``): a language without
one gets only the replacements and auto-submit. The steps only compute; deleting the previous
dictation and pressing Enter are done by `core.text_output`, where the keys are.
"""

from __future__ import annotations

from dataclasses import dataclass

from nanodictate.core.text_steps.commands import apply_commands
from nanodictate.core.text_steps.fillers import remove_fillers
from nanodictate.core.text_steps.punctuation import apply_spoken_punctuation
from nanodictate.core.text_steps.replacements import apply_replacements, parse_rules
from nanodictate.core.text_steps.word_lists import word_list

__all__ = ["StepsOutcome", "TextStepsConfig", "apply_text_steps"]


@dataclass(frozen=True)
class TextStepsConfig:
    """Which steps run; built from the settings by `ui.delivery.text_steps_config`."""

    voice_commands: bool = True
    spoken_punctuation: bool = False
    remove_fillers: bool = False
    replacements: tuple[str, ...] = ()  # the rule lines, as the setting keeps them
    auto_submit: bool = False


@dataclass(frozen=True)
class StepsOutcome:
    text: str  # to paste; may be empty ("delete that" alone) or only line breaks
    erase_previous: bool = False  # "delete that": take the previous dictation back first
    submit: bool = False  # press Enter after the paste
    problems: tuple[str, ...] = ()  # replacement rules left out, in words for the user


def apply_text_steps(text: str, language: str, config: TextStepsConfig) -> StepsOutcome:
    words = word_list(language)
    if words is not None and config.remove_fillers:
        text = remove_fillers(text, words)
    rules = parse_rules(config.replacements)
    text = apply_replacements(text, rules)
    if words is not None and config.spoken_punctuation:
        text = apply_spoken_punctuation(text, words)
    erase_previous = False
    if words is not None and config.voice_commands:
        commanded = apply_commands(text, words)
        text, erase_previous = commanded.text, commanded.erase_previous
    return StepsOutcome(
        text,
        erase_previous=erase_previous,
        submit=config.auto_submit and bool(text.strip()),
        problems=rules.problems,
    )
