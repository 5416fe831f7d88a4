"""Per-app profiles as delivery applies them: two stand-in windows of different classes, one
clipboard, the real paste sequence (core.text_output) on its paste lane, and the profiles file
in the config folder. The same words land differently in each window; the tray's tooltip names
the profile while a dictation runs; the tray menu opens the file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from delivery_rig import DeliveryRig
from PySide6.QtWidgets import QSystemTrayIcon
from ui_fakes import StubController

from nanodictate import settings as S
from nanodictate.core.dictation import AppState
from nanodictate.core.ports import WindowInfo
from nanodictate.core.profiles import EXAMPLE_PROFILES
from nanodictate.ui.menu import TrayMenu
from nanodictate.ui.tray import Tray

TERMINAL = WindowInfo(10, "~/src", "kitty", is_terminal=True)
CHAT = WindowInfo(20, "general | Slack", "Slack", is_terminal=False)
EDITOR = WindowInfo(30, "notes.txt", "gedit", is_terminal=False)


def write_profiles(text: str) -> Path:
    path = S.profiles_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def rig(qtbot: Any, tmp_path: Path) -> Iterator[DeliveryRig]:
    rig = DeliveryRig(tmp_path, EDITOR)
    yield rig
    rig.close()


def test_two_windows_of_different_classes_get_different_results(
    rig: DeliveryRig, qtbot: Any
) -> None:
    write_profiles(EXAMPLE_PROFILES.replace("enabled = false", "enabled = true"))
    said = "Git status, new line."
    for window in (TERMINAL, CHAT, EDITOR):
        rig.dictate(qtbot, window=window, said=said)
    # Terminal: commands off, no capital, no period; pasted with the terminal's keys.
    assert rig.desktop.text[TERMINAL.id] == "git status, new line"
    assert rig.desktop.paste_keys[TERMINAL.id] == ["ctrl+shift+v"]
    # Chat: "new line" is a command, then Enter sends the message (auto-submit).
    assert rig.desktop.sent[CHAT.id] == ["Git status\n"] and CHAT.id not in rig.desktop.text
    # Any other window: the settings alone.
    assert rig.desktop.text[EDITOR.id] == "Git status\n" and EDITOR.id not in rig.desktop.sent
    assert [entry.text for entry in rig.history.recent(3)] == [
        "Git status\n",
        "Git status\n",
        "git status, new line",
    ]
    assert rig.notifier.messages == []


def test_a_profile_can_type_instead_of_paste_and_mistakes_are_told_once(
    rig: DeliveryRig, qtbot: Any
) -> None:
    write_profiles(
        '[[profile]]\nname = "Typed"\napps = ["gedit"]\npaste_method = "type"\n'
        '[[profile]]\nname = "Broken"\napps = ["x"]\nlanguage = "tlh"\n'
    )
    rig.dictate(qtbot, window=EDITOR, said="Typed.")
    rig.dictate(qtbot, window=EDITOR, said="Again.")
    assert rig.desktop.text[EDITOR.id] == "Typed.Again."
    assert EDITOR.id not in rig.desktop.paste_keys  # typed: no paste keys
    assert rig.notifier.titles() == ["Some per-app profiles were left out"]
    assert 'Profile 2 ("Broken")' in rig.notifier.messages[0][1]


def test_the_tooltip_names_the_profile_while_dictating(rig: DeliveryRig, qtbot: Any) -> None:
    write_profiles(EXAMPLE_PROFILES.replace("enabled = false", "enabled = true"))
    tray = Tray(StubController(rig.delivery), rig.settings, icon=QSystemTrayIcon())
    rig.focus.window = CHAT
    rig.delivery.target_window()  # key-down
    tray._on_state(AppState.RECORDING.value)
    assert "Profile: Chat" in tray.tooltip_text().splitlines()
    tray._on_state(AppState.READY.value)
    assert "Profile" not in tray.tooltip_text()
    rig.focus.window = EDITOR
    rig.delivery.target_window()
    tray._on_state(AppState.RECORDING.value)
    assert "Profile" not in tray.tooltip_text()


def test_the_tray_menu_opens_the_profiles_file_with_the_examples(
    rig: DeliveryRig, qtbot: Any
) -> None:
    opened: list[Path] = []

    def open_file(path: Path) -> bool:
        opened.append(path)
        return True

    menu = TrayMenu(
        rig.settings,
        StubController(rig.delivery),
        rig.history,
        on_settings=lambda: None,
        on_quit=lambda: None,
        on_download=lambda: None,
        list_microphones=lambda: [],
        open_file=open_file,
    )
    menu.profiles_action.trigger()
    assert opened == [S.profiles_file()]
    assert S.profiles_file().read_text(encoding="utf-8") == EXAMPLE_PROFILES
