"""Per-app profiles as delivery applies them: two stand-in windows of different classes, one
clipboard, the real paste sequence (core.text_output) on its paste lane, and the profiles file
in the config folder. The same words land differently in each window; the tray's tooltip names
the profile while a dictation runs; the tray menu opens the file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QSystemTrayIcon
from ui_fakes import FakeFocus, FakeNotifier

from nanodictate import settings as S
from nanodictate.core.dictation import AppState, Dictation
from nanodictate.core.history import History
from nanodictate.core.ports import WindowInfo
from nanodictate.core.profiles import EXAMPLE_PROFILES
from nanodictate.core.text_output import TextOutput
from nanodictate.settings_types import MemoryStore
from nanodictate.ui.delivery import TextDelivery
from nanodictate.ui.menu import TrayMenu
from nanodictate.ui.tray import Tray

WAIT_MS = 5000
TERMINAL = WindowInfo(10, "~/src", "kitty", is_terminal=True)
CHAT = WindowInfo(20, "general | Slack", "Slack", is_terminal=False)
EDITOR = WindowInfo(30, "notes.txt", "gedit", is_terminal=False)


class Desktop:
    """Windows with one clipboard between them, as the keyboard and clipboard ports see them:
    the keys go to the window with focus; Enter in it sends its line."""

    name = "fake"

    def __init__(self, focus: FakeFocus) -> None:
        self.focus = focus
        self.text: dict[int, str] = {}
        self.sent: dict[int, list[str]] = {}
        self.paste_keys: dict[int, list[str]] = {}
        self.clipboard = ""
        self.read = False

    def _window(self) -> int:
        return int(self.focus.window.id)

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

    # --- KeyboardOutput
    def availability(self) -> tuple[bool, str]:
        return True, ""

    def wait_until_keys_released(self, timeout: float) -> bool:
        return True

    def send_paste(self, *, terminal: bool) -> None:
        window = self._window()
        self.paste_keys.setdefault(window, []).append("ctrl+shift+v" if terminal else "ctrl+v")
        self.text[window] = self.text.get(window, "") + self.clipboard
        self.read = True

    def type_text(self, text: str) -> None:
        window = self._window()
        if text == "\n":
            self.sent.setdefault(window, []).append(self.text.pop(window, ""))
        else:
            self.text[window] = self.text.get(window, "") + text


class Rig:
    def __init__(self, tmp_path: Path) -> None:
        self.settings = S.Settings(tmp_path / "settings.ini", open_store=lambda _p: MemoryStore())
        self.history = History(tmp_path / "history.sqlite3")
        self.focus = FakeFocus()
        self.desktop = Desktop(self.focus)
        self.notifier = FakeNotifier()
        output = TextOutput(
            self.desktop, self.desktop, self.focus, sleep=lambda _s: None, clock=lambda: 0.0
        )
        # No `profiles` given: the delivery reads the file in the config folder, as in the app.
        self.delivery = TextDelivery(
            settings=self.settings,
            history=self.history,
            output=output,
            notifier=self.notifier,
            spool=None,
            clock=lambda: 0.0,
            focus=self.focus,
        )

    def dictate(self, qtbot: Any, window: WindowInfo, said: str) -> None:
        self.focus.window = window
        target = self.delivery.target_window()
        dictation = Dictation(1, "dictate", True, "en", 0.0, target)
        done = SimpleNamespace(result=SimpleNamespace(text=said, audio_seconds=1.0))
        with qtbot.waitSignal(self.delivery.delivered, timeout=WAIT_MS):
            self.delivery.deliver(dictation, done, said)


def write_profiles(text: str) -> Path:
    path = S.profiles_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def rig(qtbot: Any, tmp_path: Path) -> Iterator[Rig]:
    rig = Rig(tmp_path)
    yield rig
    rig.delivery.shutdown()
    rig.history.close()


def test_two_windows_of_different_classes_get_different_results(rig: Rig, qtbot: Any) -> None:
    write_profiles(EXAMPLE_PROFILES.replace("enabled = false", "enabled = true"))
    said = "Git status, new line."
    for window in (TERMINAL, CHAT, EDITOR):
        rig.dictate(qtbot, window, said)
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
    rig: Rig, qtbot: Any
) -> None:
    write_profiles(
        '[[profile]]\nname = "Typed"\napps = ["gedit"]\npaste_method = "type"\n'
        '[[profile]]\nname = "Broken"\napps = ["x"]\nlanguage = "tlh"\n'
    )
    rig.dictate(qtbot, EDITOR, "Typed.")
    rig.dictate(qtbot, EDITOR, "Again.")
    assert rig.desktop.text[EDITOR.id] == "Typed.Again."
    assert EDITOR.id not in rig.desktop.paste_keys  # typed: no paste keys
    assert rig.notifier.titles() == ["Some per-app profiles were left out"]
    assert 'Profile 2 ("Broken")' in rig.notifier.messages[0][1]


class StubController(QObject):
    state_changed = Signal(str)
    level_changed = Signal(float)
    memory_changed = Signal(object)
    engine_state_changed = Signal(str)

    def __init__(self, delivery: TextDelivery) -> None:
        super().__init__()
        self.delivery = delivery
        self.state = AppState.READY
        self.error: str | None = None
        self.engine = SimpleNamespace(state="unloaded", memory=None, last_load=None)


def test_the_tooltip_names_the_profile_while_dictating(rig: Rig, qtbot: Any) -> None:
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


def test_the_tray_menu_opens_the_profiles_file_with_the_examples(rig: Rig, qtbot: Any) -> None:
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
