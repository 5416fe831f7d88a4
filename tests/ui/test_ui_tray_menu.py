"""Tray icon, tray menu, notifications, the model download's confirmation and the settings
window, against a stand-in controller (a QObject with the controller's signals and
properties)."""

from __future__ import annotations

import re
import threading
import time
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import QByteArray, QRect
from PySide6.QtGui import QGuiApplication
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QSystemTrayIcon
from ui_fakes import StubController

from nanodictate import settings as S
from nanodictate.core.dictation import AppState
from nanodictate.core.errors import DownloadError
from nanodictate.core.history import History
from nanodictate.core.models.download import DownloadProgress
from nanodictate.core.models.store import (
    FSMN_VAD,
    FUN_ASR_MLT_NANO,
    FUN_ASR_NANO,
    ModelSpec,
    human_size,
    spec_for,
)
from nanodictate.core.transcriber import LoadReport, MemoryReport, Precision
from nanodictate.ui.download_dialog import DownloadOffer
from nanodictate.ui.icons import icon_for, level_step, svg_bytes
from nanodictate.ui.menu import TrayMenu
from nanodictate.ui.model_download import ModelDownloader, download_size, models_to_download
from nanodictate.ui.notifications import TrayNotifier
from nanodictate.ui.settings_store import IniFileStore
from nanodictate.ui.settings_window import SettingsWindow
from nanodictate.ui.tray import Tray


@pytest.fixture
def settings(tmp_path: Path) -> S.Settings:
    return S.Settings(tmp_path / "settings.ini", open_store=IniFileStore)


def test_every_state_has_its_own_icon(qapp: Any) -> None:
    images = [icon_for(state).pixmap(32, 32).toImage() for state in AppState]
    assert all(a != b for i, a in enumerate(images) for b in images[i + 1 :])
    assert not any(icon_for(state).isNull() for state in AppState)
    quiet = icon_for(AppState.RECORDING, 0).pixmap(64, 64).toImage()
    loud = icon_for(AppState.RECORDING, level_step(0.3)).pixmap(64, 64).toImage()
    assert quiet != loud
    assert level_step(0.0) == 0 and level_step(1e-4) == 0 and level_step(0.5) == 8


def test_icons_are_package_data(qapp: Any) -> None:
    """Every state's SVG comes from the installed package (importlib.resources), not from a
    folder of the source tree, and pyproject.toml ships it."""
    for state in AppState:
        svg = svg_bytes(state)
        assert svg is not None and QSvgRenderer(QByteArray(svg)).isValid(), state
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    package_data = pyproject["tool"]["setuptools"]["package-data"]
    assert package_data["nanodictate.ui.icons"] == ["*.svg"]


def test_tray_follows_state_level_and_memory(qapp: Any, settings: S.Settings) -> None:
    controller = StubController()
    tray = Tray(controller, settings)
    assert "model not loaded" in tray.icon.toolTip() and "English" in tray.icon.toolTip()
    controller.state_changed.emit("recording")
    before = tray.icon.icon().cacheKey()
    controller.level_changed.emit(0.2)
    assert tray.icon.icon().cacheKey() != before
    controller.engine.state = "ready"
    controller.engine.memory = MemoryReport(100 << 20, 600 << 20, 0)
    controller.state_changed.emit("ready")
    controller.memory_changed.emit(controller.engine.memory)
    tip = tray.icon.toolTip()
    assert "Ready" in tip and "600 MB RAM" in tip and "INT8" in tip and "Auto" in tip
    settings.set(S.LANGUAGE, "ja")
    assert "日本語 (Japanese)" in tray.icon.toolTip()


def test_tooltip_says_a_simulated_gpu_without_bf16_computes_in_fp32(
    qapp: Any, settings: S.Settings
) -> None:
    controller = StubController()
    tray = Tray(controller, settings)
    controller.engine.state = "ready"
    controller.engine.last_load = LoadReport(
        Precision.INT8, "cuda", 1.0, True, None, "fp32", "this GPU has no bf16"
    )
    controller.engine_state_changed.emit("ready")
    assert "Precision: INT8 · Device: GPU (fp32 compute: this GPU has no bf16)" in (
        tray.icon.toolTip()
    )
    controller.engine.last_load = LoadReport(Precision.INT8, "cuda", 1.0, True, None, "bf16")
    controller.engine_state_changed.emit("ready")
    assert "Precision: INT8 · Device: GPU\n" in tray.icon.toolTip()


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
        "Speech model",
        "Language",
        "Precision",
        "Device",
        "Hotkey mode",
        "Unload after",
        "Unload now",
        "Microphone",
        "Recent",
        "Settings…",
        "Per-app profiles…",
        "Quit",
    } <= set(titles)


def test_the_language_menu_offers_only_the_active_models_languages(
    qapp: Any, settings: S.Settings, tmp_path: Path
) -> None:
    menu = _menu(settings, StubController(), History(tmp_path / "h.sqlite3"), [])
    models = menu.group_actions(S.MODEL)
    assert [a.text() for a in models] == ["Multilingual (31 languages)", "Chinese–English–Japanese"]
    assert menu.checked_value(S.MODEL) == "fun-asr-mlt-nano"
    next(a for a in menu.group_actions(S.LANGUAGE) if a.data() == "ko").trigger()
    models[1].trigger()
    assert settings.get(S.MODEL) == "fun-asr-nano"
    assert [a.text() for a in menu.group_actions(S.LANGUAGE)] == [
        "中文 (Chinese)",
        "English",
        "日本語 (Japanese)",
    ]
    # Korean is not Fun-ASR-Nano's: the language moves to one it has.
    assert settings.get(S.LANGUAGE) == "zh" and menu.checked_value(S.LANGUAGE) == "zh"
    next(a for a in menu.group_actions(S.LANGUAGE) if a.data() == "ja").trigger()
    settings.set(S.MODEL, "fun-asr-mlt-nano")  # from the settings window: the menu follows
    assert len(menu.group_actions(S.LANGUAGE)) == 31
    assert settings.get(S.LANGUAGE) == "ja" and menu.checked_value(S.LANGUAGE) == "ja"


def test_unload_microphone_and_recent(qapp: Any, settings: S.Settings, tmp_path: Path) -> None:
    controller = StubController()
    history = History(tmp_path / "h.sqlite3")
    for i in range(12):
        history.add(f"entry number {i}", language="en", audio_seconds=1, latency_seconds=0.1)
    menu = _menu(settings, controller, history, [])
    controller.engine.state = "ready"
    controller.engine_state_changed.emit("ready")
    menu.unload_action.trigger()
    assert controller.unloads
    menu.microphone_menu.aboutToShow.emit()
    microphones = menu.microphone_menu.actions()
    assert [a.text() for a in microphones] == ["System default", "USB Mic", "Webcam"]
    microphones[1].trigger()
    assert settings.get(S.MICROPHONE) == "USB Mic"
    newest = history.recent(1)[0]
    history.audio.save(newest.id, np.full(1600, 0.1, np.float32))  # its audio is kept
    menu.recent_menu.aboutToShow.emit()
    recent = menu.recent_menu.actions()
    # ten entries, a separator, then "Clear history…"
    assert len(recent) == 12 and recent[0].text() == "entry number 11"
    assert recent[10].isSeparator() and recent[11].text() == "Clear history…"
    entry_actions = {a.text(): a for a in recent[2].menu().actions()}
    assert list(entry_actions) == ["Copy", "Re-transcribe…", "Add replacement…", "Add to hotwords…"]
    entry_actions["Copy"].trigger()
    assert QGuiApplication.clipboard().text() == "entry number 9"
    # Re-transcribing needs the entry's audio: only the newest has it.
    assert not entry_actions["Re-transcribe…"].isEnabled()
    assert recent[0].menu().actions()[1].isEnabled()


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
    from nanodictate.platform import autostart

    assert autostart.set_enabled(True)
    text = autostart.autostart_file().read_text()
    assert "[Desktop Entry]" in text and "Exec=" in text
    assert autostart.is_enabled()
    autostart.set_enabled(False)
    assert not autostart.is_enabled()


def test_menu_status_line_in_words(qapp: Any, settings: S.Settings, tmp_path: Path) -> None:
    controller = StubController()
    menu = _menu(settings, controller, History(tmp_path / "h.sqlite3"), [])
    expected = {
        AppState.UNLOADED: "Model not loaded",
        AppState.LOADING: "Loading the model…",
        AppState.READY: "Ready",
        AppState.RECORDING: "Recording…",
        AppState.TRANSCRIBING: "Transcribing…",
    }
    for state, text in expected.items():
        controller.state = state
        controller.state_changed.emit(state.value)
        assert menu.status_action.text() == text
    controller.state = AppState.ERROR
    controller.error = (
        "Fun-ASR-MLT-Nano-2512 is not installed: /home/u/models/Fun-ASR-MLT-Nano-2512 does "
        "not exist. Run `nanodictate models download fun-asr-mlt-nano` to download it."
    )
    controller.state_changed.emit("error")
    assert menu.status_action.text() == "Problem: Fun-ASR-MLT-Nano-2512 is not installed"
    # A new error in the same state shows when the menu opens.
    controller.error = "Not enough free memory to load the speech model: INT8 on the GPU…"
    menu.aboutToShow.emit()
    assert menu.status_action.text() == "Problem: Not enough free memory to load the speech model"
    controller.error = "No microphone was found " + "and more words " * 10
    menu.aboutToShow.emit()
    status = menu.status_action.text()
    assert status.startswith("Problem: No microphone was found and") and status.endswith("…")
    assert len(status) == len("Problem: ") + 60


# ------------------------------------------------------------------ notifications


class RecordingTrayIcon(QSystemTrayIcon):
    """A real tray icon that also records the messages it was asked to show."""

    def __init__(self) -> None:
        super().__init__()
        self.shown: list[tuple[str, str]] = []

    def showMessage(self, title: str, message: str, *args: Any) -> None:
        self.shown.append((title, message))
        super().showMessage(title, message, *args)


def test_notification_waits_for_the_icon_simulated_geometry(qapp: Any, qtbot: Any) -> None:
    icon = RecordingTrayIcon()
    geometry = [QRect()]  # the tray host has not embedded the icon yet
    notifier = TrayNotifier(icon, geometry=lambda: geometry[0])
    clicked: list[str] = []
    notifier.show("Speech model missing", "first", action=lambda: clicked.append("first"))
    assert icon.shown == [] and notifier.waiting == 1
    qtbot.wait(200)
    assert icon.shown == [] and notifier.waiting == 1
    geometry[0] = QRect(1800, 0, 22, 22)  # embedded: the balloon can point at it
    qtbot.waitUntil(lambda: icon.shown == [("Speech model missing", "first")], timeout=1000)
    assert notifier.waiting == 0
    icon.messageClicked.emit()
    assert clicked == ["first"]
    notifier.show("Later", "second")  # the icon has its place: no more waiting
    assert icon.shown[-1] == ("Later", "second")


def test_notification_shown_anyway_after_a_bounded_wait_simulated_geometry(
    qapp: Any, qtbot: Any
) -> None:
    icon = RecordingTrayIcon()
    notifier = TrayNotifier(icon, geometry=QRect, placement_wait_s=0.3)  # never a geometry
    started = time.monotonic()
    notifier.show("Hello", "one")
    notifier.show("Hello", "two")
    assert icon.shown == []
    qtbot.waitUntil(lambda: len(icon.shown) == 2, timeout=2000)
    assert time.monotonic() - started >= 0.3
    assert icon.shown == [("Hello", "one"), ("Hello", "two")]
    notifier.show("Hello", "three")
    assert icon.shown[-1] == ("Hello", "three")


# ------------------------------------------------------------------ model download


class DownloadRig:
    """The tray, menu, notifier and download offer as the app wires them, with a
    ModelDownloader whose transfer is a local stand-in (no network)."""

    def __init__(self, settings: S.Settings, tmp_path: Path) -> None:
        self.controller = StubController()
        self.tray = Tray(self.controller, settings, icon=RecordingTrayIcon())
        self.icon: RecordingTrayIcon = self.tray.icon  # type: ignore[assignment]
        self.notifier = TrayNotifier(self.tray.icon, geometry=lambda: QRect(1800, 0, 22, 22))
        self.models_dir = tmp_path / "models"
        self.fetched: list[str] = []
        self.threads: set[str] = set()
        self.hold_until_cancelled = False  # the transfer waits for a cancel, then stops
        self.transferring = threading.Event()
        self.downloader = ModelDownloader(
            self.models_dir,
            download=self._fetch,
            speech_model=lambda: spec_for(settings.get(S.MODEL)),
        )
        self.menu = TrayMenu(
            settings,
            self.controller,
            History(tmp_path / "h.sqlite3"),
            on_settings=lambda: None,
            on_quit=lambda: None,
            on_download=lambda: self.offer.confirm(),
            list_microphones=lambda: [],
        )
        self.offer = DownloadOffer(self.downloader, self.notifier, self.menu, self.tray)

    def _fetch(self, spec: ModelSpec, models_dir: Path, progress: Any, cancel: Any) -> Path:
        self.threads.add(threading.current_thread().name)
        self.fetched.append(spec.name)
        progress(DownloadProgress("model.pt", 1 << 20, 2 << 20, 1 << 20, 2 << 20))
        if self.hold_until_cancelled:
            self.transferring.set()
            assert cancel.wait(10)
            raise DownloadError("Download cancelled")  # what download_model raises
        return models_dir / spec.folder_name


def test_notification_click_opens_the_dialog_and_only_download_starts_it(
    qapp: Any, qtbot: Any, settings: S.Settings, tmp_path: Path
) -> None:
    rig = DownloadRig(settings, tmp_path)
    rig.offer.offer("the folder does not exist")
    assert rig.icon.shown[-1][0] == "Speech model missing"
    # What Qt's X11 balloon emits for a right click on the tray icon.
    rig.icon.messageClicked.emit()
    dialog = rig.offer.dialog
    assert dialog is not None and dialog.isVisible()
    assert rig.fetched == [] and not rig.downloader.running
    text = dialog.text()
    for fact in (
        "Fun-ASR-MLT-Nano-2512",
        "FSMN-VAD",
        "https://huggingface.co/FunAudioLLM/Fun-ASR-MLT-Nano-2512",
        "https://huggingface.co/funasr/fsmn-vad",
        "ModelScope",
        "https://modelscope.cn/models/FunAudioLLM/Fun-ASR-MLT-Nano-2512",
        "https://modelscope.cn/models/iic/speech_fsmn_vad_zh-cn-16k-common-pytorch",
        "31 languages",
        "It does not understand German, French, Spanish, Italian or Russian.",
        str(rig.models_dir),
    ):
        assert fact in text
    assert dialog.not_now_button.isDefault() and not dialog.download_button.isDefault()
    rig.icon.messageClicked.emit()  # another stray click: still nothing downloads
    assert rig.offer.dialog is dialog and rig.fetched == []

    dialog.download_button.click()
    qtbot.waitUntil(lambda: "Model download" in [t for t, _m in rig.icon.shown], timeout=5000)
    assert rig.fetched == ["fsmn-vad", "fun-asr-mlt-nano"]
    # On the download's background lane, never on the GUI thread.
    (thread,) = rig.threads
    assert thread.startswith("nanodictate-download")
    assert thread != threading.main_thread().name
    assert rig.offer.dialog is None


def test_a_running_download_reports_progress_and_can_be_cancelled(
    qapp: Any, qtbot: Any, settings: S.Settings, tmp_path: Path
) -> None:
    rig = DownloadRig(settings, tmp_path)
    rig.hold_until_cancelled = True
    rig.offer.offer()
    rig.offer.confirm()
    assert rig.offer.dialog is not None
    rig.offer.dialog.download_button.click()
    assert rig.transferring.wait(5)
    # The GUI thread is free while the transfer runs: the progress reaches the tray.
    qtbot.waitUntil(lambda: "Downloading FSMN-VAD: 50%" in rig.tray.icon.toolTip(), timeout=5000)
    assert "Downloading FSMN-VAD: 50%" in rig.menu.download_action.text()
    assert rig.downloader.running
    rig.offer.confirm()  # no second dialog while it runs
    assert rig.offer.dialog is None
    rig.downloader.cancel()
    failed = ("Model download failed", "Download cancelled")
    qtbot.waitUntil(lambda: failed in rig.icon.shown, timeout=5000)
    assert not rig.downloader.running
    assert rig.fetched == ["fsmn-vad"]  # the next model was not started
    (thread,) = rig.threads
    assert thread.startswith("nanodictate-download")
    assert rig.menu.download_action.isVisible()  # still on offer for later
    assert "about" in rig.menu.download_action.text()


def test_not_now_downloads_nothing(
    qapp: Any, qtbot: Any, settings: S.Settings, tmp_path: Path
) -> None:
    rig = DownloadRig(settings, tmp_path)
    rig.offer.offer()
    assert rig.menu.download_action.isVisible()
    rig.menu.download_action.trigger()  # the tray menu item asks first, too
    dialog = rig.offer.dialog
    assert dialog is not None and dialog.isVisible()
    dialog.not_now_button.click()
    assert rig.offer.dialog is None
    qtbot.wait(200)
    assert rig.fetched == [] and not rig.downloader.running
    assert rig.menu.download_action.isVisible()  # still on offer for later
    titles = [title for title, _message in rig.icon.shown]
    assert titles == ["Speech model missing"]


def test_download_size_agrees_everywhere(
    qapp: Any, qtbot: Any, settings: S.Settings, tmp_path: Path
) -> None:
    rig = DownloadRig(settings, tmp_path)
    specs = models_to_download(rig.models_dir)
    assert specs == [FSMN_VAD, FUN_ASR_MLT_NANO]
    size = download_size(specs)
    total = FSMN_VAD.approx_download_bytes + FUN_ASR_MLT_NANO.approx_download_bytes
    assert size == f"about {human_size(total)}"
    rig.offer.offer()
    rig.offer.confirm()
    assert rig.offer.dialog is not None
    sizes = re.compile(r"about [\d.,]+ [KMG]?B")
    tooltip = rig.tray.icon.toolTip()
    notification = rig.icon.shown[-1][1]
    menu_item = rig.menu.download_action.text()
    for text in (tooltip, notification, menu_item):
        assert sizes.findall(text) == [size], text
    assert f"In all: {size}," in rig.offer.dialog.text()


def test_the_download_follows_the_chosen_speech_model(
    qapp: Any, qtbot: Any, settings: S.Settings, tmp_path: Path
) -> None:
    settings.set(S.MODEL, FUN_ASR_NANO.name)
    rig = DownloadRig(settings, tmp_path)
    rig.offer.confirm()
    dialog = rig.offer.dialog
    assert dialog is not None
    text = dialog.text()
    assert "Fun-ASR-Nano-2512" in text and "Fun-ASR-MLT-Nano-2512" not in text
    assert "The model understands 3 languages: Chinese, English, Japanese." in text
    assert "It does not understand German, French, Spanish, Italian or Russian." in text
    dialog.download_button.click()
    qtbot.waitUntil(lambda: not rig.downloader.running, timeout=5000)
    assert rig.fetched == [FSMN_VAD.name, FUN_ASR_NANO.name]


# ------------------------------------------------------------------ GPU acceleration, doctor


class RecordingNotifier:
    def __init__(self) -> None:
        self.shown: list[tuple[str, str, str]] = []

    def show(self, title: str, message: str, *, level: str = "info", action: Any = None) -> None:
        self.shown.append((title, message, level))


def _accelerated_app(tmp_path: Path, fail_on: str | None = None) -> Any:
    """An installed app's layout whose uv and Python are a recording runner."""
    from nanodictate.core import runtime_install as ri

    layout = ri.Layout(tmp_path / "app", "linux")
    layout.lock_file.parent.mkdir(parents=True)
    layout.lock_file.write_text("numpy==2.3.4\n")
    ri.InstallState(variant="cpu").save(layout.state_file)

    def run(command: Any, env: Any) -> Any:
        import subprocess

        failed = fail_on is not None and any(fail_on in part for part in command)
        return subprocess.CompletedProcess(command, int(failed), "", "no kernel image\n")

    return ri.RuntimeInstaller(layout, run, env={})


def _ada_choice() -> Any:
    from nanodictate.core.acceleration import CUDA_13_0, Choice

    return Choice(CUDA_13_0, "NVIDIA GeForce RTX 4070, driver 580.95")


def test_menu_shows_gpu_and_check_items_only_when_the_app_provides_them(
    qapp: Any, settings: S.Settings, tmp_path: Path
) -> None:
    calls: list[str] = []
    plain = _menu(settings, StubController(), History(tmp_path / "h.sqlite3"), calls)
    assert not plain.acceleration_action.isVisible() and not plain.doctor_action.isVisible()
    menu = TrayMenu(
        settings,
        StubController(),
        History(tmp_path / "h2.sqlite3"),
        on_settings=lambda: None,
        on_quit=lambda: None,
        on_download=lambda: None,
        list_microphones=lambda: [],
        on_acceleration=lambda: calls.append("gpu"),
        on_doctor=lambda: calls.append("doctor"),
    )
    assert menu.acceleration_action.isVisible() and menu.doctor_action.isVisible()
    menu.acceleration_action.trigger()
    menu.doctor_action.trigger()
    assert calls == ["gpu", "doctor"]


def test_first_run_offers_the_gpu_build_and_installs_it_when_asked(
    qapp: Any, qtbot: Any, settings: S.Settings, tmp_path: Path
) -> None:
    from nanodictate.ui.acceleration_dialog import AccelerationStep

    tray, notifier = Tray(StubController(), settings), RecordingNotifier()
    step = AccelerationStep(_accelerated_app(tmp_path), notifier, tray, choose=_ada_choice)
    step.at_start()
    assert "Acceleration: CPU" in tray.icon.toolTip()
    qtbot.waitUntil(lambda: step.dialog is not None, timeout=5000)
    assert step.dialog is not None and step.dialog.install_button is not None
    assert step.dialog.install_button.text() == "Install CUDA 13.0 (3.00 GB)"
    assert "about 3.00 GB to download from download.pytorch.org" in step.dialog.label.text()

    step.dialog.accept()
    assert "Acceleration: installing CUDA 13.0…" in tray.icon.toolTip()
    qtbot.waitUntil(lambda: bool(notifier.shown), timeout=5000)
    assert notifier.shown[0][0] == "GPU acceleration installed"
    assert "Acceleration: CUDA 13.0" in tray.icon.toolTip()
    assert step.installer.state().gpu_offered


def test_a_failed_gpu_build_is_told_remembered_and_not_offered_again_unasked(
    qapp: Any, qtbot: Any, settings: S.Settings, tmp_path: Path
) -> None:
    from nanodictate.ui.acceleration_dialog import AccelerationStep

    tray, notifier = Tray(StubController(), settings), RecordingNotifier()
    installer = _accelerated_app(tmp_path, fail_on="device='cuda'")
    step = AccelerationStep(installer, notifier, tray, choose=_ada_choice)
    step.at_start()
    qtbot.waitUntil(lambda: step.dialog is not None, timeout=5000)
    assert step.dialog is not None
    step.dialog.accept()
    qtbot.waitUntil(lambda: bool(notifier.shown), timeout=5000)
    assert notifier.shown[0][0] == "GPU acceleration failed" and notifier.shown[0][2] == "error"
    assert "Acceleration: CPU (CUDA 13.0 failed here)" in tray.icon.toolTip()

    later = AccelerationStep(installer, notifier, tray, choose=_ada_choice)
    later.at_start()  # offered once already: no dialog at start
    later.open()  # the tray item shows it again, with the failure
    qtbot.waitUntil(lambda: later.dialog is not None, timeout=5000)
    assert later.dialog is not None
    assert "It failed here before: no kernel image" in later.dialog.label.text()


def test_a_machine_without_nvidia_gpu_is_told_so_with_nothing_to_install(
    qapp: Any, qtbot: Any, settings: S.Settings, tmp_path: Path
) -> None:
    from nanodictate.core.acceleration import CPU, Choice
    from nanodictate.ui.acceleration_dialog import AccelerationStep

    tray, notifier = Tray(StubController(), settings), RecordingNotifier()
    step = AccelerationStep(
        _accelerated_app(tmp_path),
        notifier,
        tray,
        choose=lambda: Choice(CPU, "No NVIDIA GPU found"),
    )
    step.open()
    qtbot.waitUntil(lambda: step.dialog is not None, timeout=5000)
    assert step.dialog is not None and step.dialog.install_button is None
    assert step.dialog.label.text().startswith("Found: No NVIDIA GPU found.")
