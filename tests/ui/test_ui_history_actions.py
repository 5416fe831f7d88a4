"""A Recent entry's actions with the real controller, worker thread and history (fake
engine): kept audio re-transcribed with another language lands in history and on the
clipboard only; quick adds change the settings without the settings window."""

from __future__ import annotations

from typing import Any

import numpy as np
from controller_rig import WAIT_MS, Rig, hold

from nanodictate import settings as S
from nanodictate.core.history import Entry
from nanodictate.core.text_output import PasteMethod
from nanodictate.ui.history_actions import (
    HistoryActions,
    RetranscribeChoice,
    RetranscribeDialog,
    split_hotwords,
)


def _actions(rig: Rig, answers: list[str | None], told: list[str] | None = None) -> HistoryActions:
    return HistoryActions(
        rig.settings,
        rig.controller,
        rig.history,
        ask_text=lambda _title, _label, _text: answers.pop(0),
        ask_retranscribe=lambda _settings, _entry: RetranscribeChoice("zh", "fp32", ("Zürich",)),
        tell_problem=lambda _title, message: (told if told is not None else []).append(message),
    )


def test_a_dictation_keeps_its_audio_only_when_asked_fake_engine(rig: Rig, qtbot: Any) -> None:
    hold(rig, qtbot, 0.5)
    qtbot.waitUntil(lambda: len(rig.history) == 1, timeout=WAIT_MS)
    assert rig.history.audio.entry_ids() == []  # off by default
    rig.settings.set(S.KEEP_AUDIO, True)
    hold(rig, qtbot, 0.5)
    qtbot.waitUntil(lambda: len(rig.history) == 2, timeout=WAIT_MS)
    newest = rig.history.recent(1)[0]
    assert rig.history.audio.entry_ids() == [newest.id]
    assert len(rig.history.audio.read(newest.id)) >= 0.5 * 16000
    rig.settings.set(S.KEEP_AUDIO, False)  # turned off: the kept audio goes
    assert rig.history.audio.entry_ids() == []


def test_retranscribe_with_another_language_fake_engine(rig: Rig, qtbot: Any) -> None:
    rig.settings.set(S.KEEP_AUDIO, True)
    entry_id = rig.history.add("hello world", language="en", audio_seconds=1, latency_seconds=0)
    rig.history.audio.save(entry_id, np.full(16000, 0.1, np.float32))
    entry = rig.history.recent(1)[0]
    rig.engine.text = "你好世界"
    actions = _actions(rig, [])
    assert actions.can_retranscribe(entry)
    assert actions.retranscribe(entry)
    qtbot.waitUntil(lambda: len(rig.history) == 2, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: "Re-transcribed" in rig.notifier.titles(), timeout=WAIT_MS)
    assert ("load", "fp32", "auto") in rig.engine.calls
    assert ("transcribe", "zh", ("Zürich",), True) in rig.engine.calls
    newest = rig.history.recent(1)[0]
    assert (newest.text, newest.language) == ("你好世界", "zh")
    # To the clipboard, never into a window.
    assert rig.output.delivered[-1][:3] == ("你好世界", PasteMethod.COPY, None)
    assert rig.history.audio.has(newest.id)  # kept again, to re-transcribe in turn


def test_retranscribe_without_audio_tells_why_fake_engine(rig: Rig) -> None:
    entry = Entry(41, 0.0, "gone", "en", 1.0, 0.1)
    assert not _actions(rig, []).retranscribe(entry)
    assert rig.notifier.titles() == ["Cannot re-transcribe"]
    assert not any(call[0] == "transcribe" for call in rig.engine.calls)


def test_quick_add_replacement_and_hotwords(rig: Rig) -> None:
    entry = Entry(1, 0.0, "meet me in  zurich", "en", 1.0, 0.1)
    told: list[str] = []
    # A rule with a mistake is asked again with the problem shown; then a valid one is saved.
    actions = _actions(rig, ["/zur(ich/ => Zürich", "zurich => Zürich"], told)
    assert actions.add_replacement(entry)
    assert len(told) == 1
    assert rig.settings.get(S.REPLACEMENTS) == ["zurich => Zürich"]
    assert not _actions(rig, [None]).add_replacement(entry)  # cancelled: nothing changes
    assert rig.settings.get(S.REPLACEMENTS) == ["zurich => Zürich"]
    rig.settings.set(S.HOTWORDS, ["Kubernetes"])
    assert _actions(rig, ["Zürich, Kubernetes,\nNanoDictate"]).add_hotwords(entry)
    assert rig.settings.get(S.HOTWORDS) == ["Kubernetes", "Zürich", "NanoDictate"]


def test_retranscribe_dialog_starts_from_the_entry_and_settings(rig: Rig) -> None:
    rig.settings.set(S.HOTWORDS, ["Kubernetes"])
    dialog = RetranscribeDialog(rig.settings, Entry(1, 0.0, "bonjour", "ja", 1.0, 0.1))
    assert dialog.choice() == RetranscribeChoice("ja", "int8", ("Kubernetes",))
    dialog.language.setCurrentIndex(dialog.language.findData("yue"))
    dialog.precision.setCurrentIndex(dialog.precision.findData("bf16"))
    dialog.hotwords.setPlainText("Zürich\n\n Zürich ")
    assert dialog.choice() == RetranscribeChoice("yue", "bf16", ("Zürich",))
    dialog.deleteLater()


def test_split_hotwords() -> None:
    assert split_hotwords(" a, b，c\n\na ") == ["a", "b", "c"]


def test_clear_history_asks_first_and_deletes_the_audio_too_fake_engine(
    rig: Rig, qtbot: Any
) -> None:
    rig.settings.set(S.KEEP_AUDIO, True)
    hold(rig, qtbot, 0.5)
    qtbot.waitUntil(lambda: len(rig.history) == 1, timeout=WAIT_MS)
    assert rig.history.audio.entry_ids() != []
    answers = [False, True]
    actions = HistoryActions(
        rig.settings, rig.controller, rig.history, confirm=lambda _t, _q: answers.pop(0)
    )
    assert not actions.clear_history() and len(rig.history) == 1  # "Cancel": nothing goes
    assert actions.clear_history()
    assert len(rig.history) == 0 and rig.history.audio.entry_ids() == []
