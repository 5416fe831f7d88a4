"""The text steps as delivery applies them (nanodictate.ui.delivery), with the real history,
the real paste sequence (core.text_output) and its paste lane, into a chat window of a small
stand-in desktop (`ui_fakes.FakeDesktop`): what lands in the window, what is sent with Enter,
what the history keeps and what the user is told."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from delivery_rig import DeliveryRig

from nanodictate import settings as S
from nanodictate.core.ports import WindowInfo
from nanodictate.core.text_output import PasteMethod
from nanodictate.core.text_steps import TextStepsConfig
from nanodictate.settings_types import MemoryStore
from nanodictate.ui.delivery import text_steps_config

CHAT = WindowInfo(42, "Chat", "chat", is_terminal=False)


@pytest.fixture
def rig(qtbot: Any, tmp_path: Path) -> Iterator[DeliveryRig]:
    rig = DeliveryRig(tmp_path, CHAT, clipboard="the user's clipboard")
    yield rig
    rig.close()


def test_new_line_lands_as_a_line_break_and_the_history_keeps_the_final_text(
    rig: DeliveryRig, qtbot: Any
) -> None:
    assert rig.dictate(qtbot, "Dear team, new line").ok
    assert rig.dictate(qtbot, "The build is green.").ok
    assert rig.desktop.text[CHAT.id] == "Dear team\nThe build is green."
    assert rig.history_texts() == ["The build is green.", "Dear team\n"]
    assert rig.desktop.clipboard == "the user's clipboard"


def test_an_ordinary_sentence_with_the_words_lands_as_said(rig: DeliveryRig, qtbot: Any) -> None:
    rig.dictate(qtbot, "Start a new line here.")
    assert rig.desktop.text[CHAT.id] == "Start a new line here."


def test_scratch_that_replaces_the_previous_dictation(rig: DeliveryRig, qtbot: Any) -> None:
    rig.dictate(qtbot, "Meet me at four.")
    rig.dictate(qtbot, "Scratch that. Meet me at five.")
    assert rig.desktop.text[CHAT.id] == "Meet me at five."
    rig.dictate(qtbot, "删除上一句。", "zh")
    assert rig.desktop.text[CHAT.id] == ""
    # The history keeps what was dictated; a command alone adds nothing.
    assert rig.history_texts() == ["Meet me at five.", "Meet me at four."]
    assert rig.notifier.messages == []


def test_delete_that_where_it_cannot_work_is_told_and_deletes_nothing(
    rig: DeliveryRig, qtbot: Any
) -> None:
    rig.dictate(qtbot, "Keep this.")
    rig.focus.window = WindowInfo(7, "Other", "other", is_terminal=False)
    outcome = rig.dictate(qtbot, "Delete that.")
    assert outcome.ok
    assert rig.desktop.text[CHAT.id] == "Keep this."
    assert rig.notifier.messages == [
        ("Nothing was deleted", "The last dictation went to another window.", "warning")
    ]
    rig.settings.set(S.PASTE_METHOD, PasteMethod.COPY.value)
    rig.dictate(qtbot, "Scratch that.")
    assert rig.notifier.messages[-1][1] == (
        "In copy-only mode nothing was pasted, so nothing is taken back."
    )


def test_auto_submit_presses_enter_after_the_paste(rig: DeliveryRig, qtbot: Any) -> None:
    rig.settings.set(S.AUTO_SUBMIT, True)
    rig.dictate(qtbot, "Ship it.")
    rig.dictate(qtbot, "Scratch that.")  # sent already: nothing to take back, nothing sent
    assert rig.desktop.sent[CHAT.id] == ["Ship it."] and CHAT.id not in rig.desktop.text
    assert rig.notifier.titles() == ["Nothing was deleted"]


def test_fillers_and_replacements_with_a_broken_rule_told_once(
    rig: DeliveryRig, qtbot: Any
) -> None:
    rig.settings.set(S.REMOVE_FILLERS, True)
    rig.settings.set(S.REPLACEMENTS, ["nano dictate => nanodictate", "/(/ => x"])
    rig.dictate(qtbot, "Um, nano dictate works. ")
    rig.dictate(qtbot, "Uh, nano dictate rocks.")
    assert rig.desktop.text[CHAT.id] == "nanodictate works.nanodictate rocks."
    assert rig.notifier.titles() == ["Some replacement rules were skipped"]
    assert "Replacement rule 2" in rig.notifier.messages[0][1]


def test_a_failing_step_leaves_the_text_as_transcribed(rig: DeliveryRig, qtbot: Any) -> None:
    def broken() -> TextStepsConfig:
        raise RuntimeError("settings unreadable")

    rig.delivery._steps_config = broken
    assert rig.dictate(qtbot, "Hello world. New line.").ok
    assert rig.desktop.text[CHAT.id] == "Hello world. New line."


def test_the_settings_choose_the_steps(tmp_path: Path) -> None:
    settings = S.Settings(tmp_path / "settings.ini", open_store=lambda _p: MemoryStore())
    assert text_steps_config(settings) == TextStepsConfig()
    settings.set(S.VOICE_COMMANDS, False)
    settings.set(S.SPOKEN_PUNCTUATION, True)
    settings.set(S.REMOVE_FILLERS, True)
    settings.set(S.REPLACEMENTS, ["teh => the"])
    settings.set(S.AUTO_SUBMIT, True)
    assert text_steps_config(settings) == TextStepsConfig(
        voice_commands=False,
        spoken_punctuation=True,
        remove_fillers=True,
        replacements=("teh => the",),
        auto_submit=True,
    )
