"""Tray icon, tray menu and settings window, against a stand-in controller (a QObject with
the controller's signals and properties)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QGuiApplication

from nanodictate import settings as S
from nanodictate.core.engine import MemoryReport
from nanodictate.core.history import History
from nanodictate.ui.icons import AppState, icon_for, level_step
from nanodictate.ui.menu import TrayMenu
from nanodictate.ui.settings_window import SettingsWindow
from nanodictate.ui.tray import Tray


class StubController(QObject):
    state_changed = Signal(str)
    level_changed = Signal(float)
    memory_changed = Signal(object)
    engine_state_changed = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self.state = AppState.UNLOADED
        self.engine_state = "unloaded"
        self.error: str | None = None
        self.memory: Any = None
        self.last_load: Any = None
        self.unloads: list[str] = []

    def unload_model(self, reason: str = "") -> None:
        self.unloads.append(reason)


@pytest.fixture
def settings(tmp_path: Path) -> S.Settings:
    return S.Settings(tmp_path / "settings.ini")


def test_every_state_has_its_own_icon(qapp: Any) -> None:
    images = [icon_for(state).pixmap(32, 32).toImage() for state in AppState]
    assert all(a != b for i, a in enumerate(images) for b in images[i + 1 :])
    assert not any(icon_for(state).isNull() for state in AppState)
    quiet = icon_for(AppState.RECORDING, 0).pixmap(64, 64).toImage()
    loud = icon_for(AppState.RECORDING, level_step(0.3)).pixmap(64, 64).toImage()
    assert quiet != loud
    assert level_step(0.0) == 0 and level_step(1e-4) == 0 and level_step(0.5) == 8


def test_tray_follows_state_level_and_memory(qapp: Any, settings: S.Settings) -> None:
    controller = StubController()
    tray = Tray(controller, settings)
    assert "model not loaded" in tray.icon.toolTip() and "English" in tray.icon.toolTip()
    controller.state_changed.emit("recording")
    before = tray.icon.icon().cacheKey()
    controller.level_changed.emit(0.2)
    assert tray.icon.icon().cacheKey() != before
    controller.engine_state = "ready"
    controller.memory = MemoryReport(100 << 20, 600 << 20, 0)
    controller.state_changed.emit("ready")
    controller.memory_changed.emit(controller.memory)
    tip = tray.icon.toolTip()
    assert "Ready" in tip and "600 MB RAM" in tip and "INT8" in tip and "Auto" in tip
    settings.set(S.LANGUAGE, "ja")
    assert "日本語" in tray.icon.toolTip()


def _menu(
    settings: S.Settings, controller: StubController, history: History, calls: list[str]
) -> TrayMenu:
    return TrayMenu(
        settings,
        controller,
        history,
        on_settings=lambda: calls.append("settings"),
        on_quit=lambda: calls.append("quit"),
        on_download=lambda: calls.append("download"),
        list_microphones=lambda: ["USB Mic", "Webcam"],
    )


def test_menu_choices_apply_at_once(qapp: Any, settings: S.Settings, tmp_path: Path) -> None:
    controller = StubController()
    calls: list[str] = []
    menu = _menu(settings, controller, History(tmp_path / "h.sqlite3"), calls)
    languages = menu.group_actions(S.LANGUAGE)
    assert len(languages) == 31 and languages[1].text() == "English"
    assert menu.checked_value(S.LANGUAGE) == "en"
    next(a for a in languages if a.data() == "th").trigger()
    assert settings.get(S.LANGUAGE) == "th" and menu.checked_value(S.LANGUAGE) == "th"
    next(a for a in menu.group_actions(S.PRECISION) if a.data() == "bf16").trigger()
    assert settings.get(S.PRECISION) == "bf16"
    labels = [a.text() for a in menu.group_actions(S.UNLOAD_AFTER_MINUTES)]
    assert labels == ["Immediately", "1 min", "5 min", "15 min", "60 min", "Never"]
    assert menu.checked_value(S.UNLOAD_AFTER_MINUTES) == 5
    assert [a.text() for a in menu.group_actions(S.DEVICE)] == ["Auto", "GPU", "CPU"]
    settings.set(S.HOTKEY_MODE, "toggle")  # changed elsewhere: the menu follows
    assert menu.checked_value(S.HOTKEY_MODE) == "toggle"
    titles = [a.text() for a in menu.actions()]
    assert {
        "Language",
        "Precision",
        "Device",
        "Hotkey mode",
        "Unload after",
        "Unload now",
        "Microphone",
        "Recent",
        "Settings…",
        "Quit",
    } <= set(titles)


def test_unload_microphone_and_recent(qapp: Any, settings: S.Settings, tmp_path: Path) -> None:
    controller = StubController()
    history = History(tmp_path / "h.sqlite3")
    for i in range(12):
        history.add(f"entry number {i}", language="en", audio_seconds=1, latency_seconds=0.1)
    menu = _menu(settings, controller, history, [])
    controller.engine_state = "ready"
    controller.engine_state_changed.emit("ready")
    menu.unload_action.trigger()
    assert controller.unloads
    menu.microphone_menu.aboutToShow.emit()
    microphones = menu.microphone_menu.actions()
    assert [a.text() for a in microphones] == ["System default", "USB Mic", "Webcam"]
    microphones[1].trigger()
    assert settings.get(S.MICROPHONE) == "USB Mic"
    menu.recent_menu.aboutToShow.emit()
    recent = menu.recent_menu.actions()
    assert len(recent) == 10 and recent[0].text() == "entry number 11"
    recent[2].trigger()
    assert QGuiApplication.clipboard().text() == "entry number 9"


def test_settings_window_saves_valid_values_only(qapp: Any, settings: S.Settings) -> None:
    window = SettingsWindow(settings)
    hotwords = window.editors["hotwords"].widget
    hotwords.setPlainText("Kubernetes\n\n  Zürich  \n")  # type: ignore[attr-defined]
    window.editors["itn"].widget.setChecked(False)  # type: ignore[attr-defined]
    window.editors["paste_method"].widget.setCurrentIndex(2)  # type: ignore[attr-defined]
    assert window.apply()
    assert settings.get(S.HOTWORDS) == ["Kubernetes", "Zürich"]
    assert settings.get(S.ITN) is False
    assert settings.get(S.PASTE_METHOD) == "copy"

    window.editors["hotkey_dictate"].widget.setText("ctrl+alt+")  # type: ignore[attr-defined]
    window.editors["favourite_hotkeys"].widget.setPlainText("xx = ctrl+alt+x")  # type: ignore[attr-defined]
    window.editors["hotwords"].widget.setPlainText("other")  # type: ignore[attr-defined]
    assert not window.apply()
    assert "Dictation hotkey" in window.error_label.text()
    assert settings.get(S.HOTKEY_DICTATE) == "ctrl+alt+space"
    assert settings.get(S.HOTWORDS) == ["Kubernetes", "Zürich"]  # nothing saved


def test_start_at_login_writes_an_xdg_autostart_entry(qapp: Any) -> None:
    from nanodictate.ui import autostart

    assert autostart.set_enabled(True)
    text = autostart.autostart_file().read_text()
    assert "[Desktop Entry]" in text and "Exec=" in text
    assert autostart.is_enabled()
    autostart.set_enabled(False)
    assert not autostart.is_enabled()
