"""The text steps as delivery applies them (nanodictate.ui.delivery), with the real history,
the real paste sequence (core.text_output) and its paste lane, into a small stand-in for a
chat window and its clipboard: what lands in the window, what is sent with Enter, what the
history keeps and what the user is told."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from ui_fakes import FakeFocus, FakeNotifier

from nanodictate import settings as S
from nanodictate.core.dictation import Dictation
from nanodictate.core.history import History
from nanodictate.core.ports import WindowInfo
from nanodictate.core.text_output import PasteMethod, TextOutput
from nanodictate.core.text_steps import TextStepsConfig
from nanodictate.settings_types import MemoryStore
from nanodictate.ui.delivery import TextDelivery, text_steps_config

WAIT_MS = 5000


class ChatWindow:
    """A chat window's input box with the clipboard, as the keyboard and clipboard ports see
    them: Ctrl+V inserts the clipboard, Backspace deletes, Enter sends the message."""

    name = "fake"

    def __init__(self) -> None:
        self.text = ""
        self.sent: list[str] = []
        self.clipboard = "the user's clipboard"
        self.read = False

    # --- ClipboardPort
    def snapshot(self) -> object:
        return self.clipboard

    def put_text(self, text: str) -> None:
        self.clipboard = text

    def read_text(self) -> str | None:
        return self.clipboard

    def arm_read_detection(self) -> None:
        self.read = False

    def was_read(self) -> bool | None:
        return self.read

    def restore(self, snapshot: object) -> None:
        self.clipboard = str(snapshot)

    # --- KeyboardOutput (and BackspaceKeyboard)
    def availability(self) -> tuple[bool, str]:
        return True, ""

    def wait_until_keys_released(self, timeout: float) -> bool:
        return True

    def send_paste(self, *, terminal: bool) -> None:
        self.text += self.clipboard
        self.read = True

    def type_text(self, text: str) -> None:
        if text == "\n":
            self.sent.append(self.text)
            self.text = ""
        else:
            self.text += text

    def send_backspaces(self, count: int) -> None:
        self.text = self.text[:-count]


class Rig:
    def __init__(self, tmp_path: Path) -> None:
        self.settings = S.Settings(tmp_path / "settings.ini", open_store=lambda _p: MemoryStore())
        self.history = History(tmp_path / "history.sqlite3")
        self.window = ChatWindow()
        self.focus = FakeFocus()
        self.focus.window = WindowInfo(42, "Chat", "chat", is_terminal=False)
        self.notifier = FakeNotifier()
        self.config = TextStepsConfig()
        self.output = TextOutput(
            self.window, self.window, self.focus, sleep=lambda _s: None, clock=lambda: 0.0
        )
        self.delivery = TextDelivery(
            settings=self.settings,
            history=self.history,
            output=self.output,
            notifier=self.notifier,
            spool=None,
            clock=lambda: 0.0,
            focus=self.focus,
            steps_config=lambda: self.config,
        )

    def dictate(self, qtbot: Any, said: str, language: str = "en") -> Any:
        """Deliver `said` as the engine's transcription; the paste's outcome."""
        dictation = Dictation(1, "dictate", True, language, 0.0, self.delivery.target_window())
        done = SimpleNamespace(result=SimpleNamespace(text=said, audio_seconds=1.0))
        with qtbot.waitSignal(self.delivery.delivered, timeout=WAIT_MS) as signal:
            self.delivery.deliver(dictation, done, said)
        return signal.args[2]

    def history_texts(self) -> list[str]:
        return [entry.text for entry in self.history.recent(10)]


@pytest.fixture
def rig(qtbot: Any, tmp_path: Path) -> Iterator[Rig]:
    rig = Rig(tmp_path)
    yield rig
    rig.delivery.shutdown()
    rig.history.close()


def test_new_line_lands_as_a_line_break_and_the_history_keeps_the_final_text(
    rig: Rig, qtbot: Any
) -> None:
    assert rig.dictate(qtbot, "Dear team, new line").ok
    assert rig.dictate(qtbot, "The build is green.").ok
    assert rig.window.text == "Dear team\nThe build is green."
    assert rig.history_texts() == ["The build is green.", "Dear team\n"]
    assert rig.window.clipboard == "the user's clipboard"


def test_an_ordinary_sentence_with_the_words_lands_as_said(rig: Rig, qtbot: Any) -> None:
    rig.dictate(qtbot, "Start a new line here.")
    assert rig.window.text == "Start a new line here."


def test_scratch_that_replaces_the_previous_dictation(rig: Rig, qtbot: Any) -> None:
    rig.dictate(qtbot, "Meet me at four.")
    rig.dictate(qtbot, "Scratch that. Meet me at five.")
    assert rig.window.text == "Meet me at five."
    rig.dictate(qtbot, "删除上一句。", "zh")
    assert rig.window.text == ""
    # The history keeps what was dictated; a command alone adds nothing.
    assert rig.history_texts() == ["Meet me at five.", "Meet me at four."]
    assert rig.notifier.messages == []


def test_delete_that_where_it_cannot_work_is_told_and_deletes_nothing(rig: Rig, qtbot: Any) -> None:
    rig.dictate(qtbot, "Keep this.")
    rig.focus.window = WindowInfo(7, "Other", "other", is_terminal=False)
    outcome = rig.dictate(qtbot, "Delete that.")
    assert outcome.ok
    assert rig.window.text == "Keep this."
    assert rig.notifier.messages == [
        ("Nothing was deleted", "The last dictation went to another window.", "warning")
    ]
    rig.settings.set(S.PASTE_METHOD, PasteMethod.COPY.value)
    rig.dictate(qtbot, "Scratch that.")
    assert rig.notifier.messages[-1][1] == (
        "In copy-only mode nothing was pasted, so nothing is taken back."
    )


def test_auto_submit_presses_enter_after_the_paste(rig: Rig, qtbot: Any) -> None:
    rig.config = TextStepsConfig(auto_submit=True)
    rig.dictate(qtbot, "Ship it.")
    rig.dictate(qtbot, "Scratch that.")  # sent already: nothing to take back, nothing sent
    assert rig.window.sent == ["Ship it."] and rig.window.text == ""
    assert rig.notifier.titles() == ["Nothing was deleted"]


def test_fillers_and_replacements_with_a_broken_rule_told_once(rig: Rig, qtbot: Any) -> None:
    rig.config = TextStepsConfig(
        remove_fillers=True, replacements=("nano dictate => nanodictate", "/(/ => x")
    )
    rig.dictate(qtbot, "Um, nano dictate works. ")
    rig.dictate(qtbot, "Uh, nano dictate rocks.")
    assert rig.window.text == "nanodictate works.nanodictate rocks."
    assert rig.notifier.titles() == ["Some replacement rules were skipped"]
    assert "Replacement rule 2" in rig.notifier.messages[0][1]


def test_a_failing_step_leaves_the_text_as_transcribed(rig: Rig, qtbot: Any) -> None:
    def broken() -> TextStepsConfig:
        raise RuntimeError("settings unreadable")

    rig.delivery._steps_config = broken
    assert rig.dictate(qtbot, "Hello world. New line.").ok
    assert rig.window.text == "Hello world. New line."


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
