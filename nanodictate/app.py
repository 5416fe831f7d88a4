"""The tray app: build the Qt application, choose the platform backends once, wire the parts.

Start-up stays light (tray icon within a second, ≈100 MB): torch, funasr and librosa are
imported by the engine on its worker thread at the first load, never here.

Environment:
- ``NANODICTATE_MODELS_DIR`` — models root holding ``Fun-ASR-MLT-Nano-2512/`` and
  ``fsmn-vad/`` (wins over the models-folder setting); ``NANODICTATE_CACHE_DIR`` — the INT8
  cache; ``NANODICTATE_CONFIG_DIR`` — settings folder; ``NANODICTATE_DATA_DIR`` — history.
- ``NANODICTATE_TEST_REPORT=path`` — TEST HOOK: append one JSON line per event ("started",
  then one per dictation with key-down→first-frame and key-up→pasted times, never the text;
  "tray" whenever the tray icon's state or tooltip changes), for the end-to-end tests.
- ``NANODICTATE_TRAY_WAIT`` — seconds to wait for a system tray to appear (default 5: at login
  the panel may start after us).
- ``NANODICTATE_TEST_MINUTE_MS=ms`` — TEST HOOK: how long a "minute" of the idle timers lasts,
  so the soak test can have the model unloaded and loaded again many times.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the real imports happen in `build`, after the tray can show
    from PySide6.QtWidgets import QApplication

    from nanodictate.core.history import History
    from nanodictate.core.recorder import Recorder
    from nanodictate.platform.base import PlatformBackends
    from nanodictate.settings import Settings
    from nanodictate.ui.acceleration_dialog import AccelerationStep, DoctorLauncher
    from nanodictate.ui.clipboard import QtClipboard
    from nanodictate.ui.controller import DictationController
    from nanodictate.ui.download_dialog import DownloadOffer
    from nanodictate.ui.menu import TrayMenu
    from nanodictate.ui.model_download import ModelDownloader
    from nanodictate.ui.notifications import TrayNotifier
    from nanodictate.ui.settings_window import SettingsWindow
    from nanodictate.ui.tray import Tray
    from nanodictate.ui.worker import EngineService

log = logging.getLogger(__name__)

TEST_REPORT_ENV = "NANODICTATE_TEST_REPORT"
TEST_MINUTE_ENV = "NANODICTATE_TEST_MINUTE_MS"
TRAY_WAIT_ENV = "NANODICTATE_TRAY_WAIT"
DEFAULT_TRAY_WAIT_S = 5.0


def _write_report(path: Path | None, record: dict[str, Any]) -> None:
    if path is None:
        return
    import json

    with path.open("a", encoding="utf-8") as stream:
        stream.write(json.dumps(record) + "\n")


def run_app(argv: Sequence[str]) -> int:
    started = time.monotonic()
    import platformdirs

    from nanodictate.log_setup import configure_logging, verbosity
    from nanodictate.ui.application import (
        NO_TRAY_MESSAGE,
        make_application,
        quit_on_signals,
        wait_for_tray,
    )
    from nanodictate.ui.single_instance import InstanceServer, send_command

    configure_logging(
        # cli.main passes [] when it parsed sys.argv itself.
        verbosity(argv or sys.argv[1:]),
        Path(platformdirs.user_log_dir("nanodictate", appauthor=False)) / "nanodictate.log",
    )
    app = make_application()

    # One instance per user: hand over to the running one.
    running: TrayApp | None = None
    server = InstanceServer(lambda command: running is not None and running.handle(command))
    if not server.listen():
        answer = send_command("show")
        print("nanodictate is already running" + ("; opened its settings." if answer else "."))
        return 0

    wait = float(os.environ.get(TRAY_WAIT_ENV, DEFAULT_TRAY_WAIT_S))
    if not wait_for_tray(app, wait):
        print(NO_TRAY_MESSAGE, file=sys.stderr)
        log.error(NO_TRAY_MESSAGE)
        server.close()
        return 1

    running = parts = build(app)
    tray = parts.tray
    tray.icon.show()
    tray_ms = (time.monotonic() - started) * 1000
    log.info("Tray icon shown %.0f ms after launch", tray_ms)

    from PySide6.QtCore import QTimer

    def after_show() -> None:
        # After the icon is up, so slow parts (grabs, opening the microphone) cannot delay it.
        problems = parts.start_services()
        from nanodictate.core.asr.memory import process_rss

        parts.report(
            {
                "event": "started",
                "tray_ms": round(tray_ms, 1),
                "ready_ms": round((time.monotonic() - started) * 1000, 1),
                "rss_mb": round(process_rss() / 2**20, 1),
                "platform": parts.backends.name,
                "hotkey_problems": problems,
                "pid": os.getpid(),
                "tray_state": tray.state.value,
                "tooltip": tray.tooltip_text(),
            },
        )

    QTimer.singleShot(0, after_show)
    quit_on_signals(app)
    try:
        return int(app.exec())
    finally:
        parts.shutdown()
        server.close()


@dataclass
class TrayApp:
    """Every long-lived part of the running app, built once by `build`, ended by `shutdown`."""

    qt: QApplication
    settings: Settings
    history: History
    recorder: Recorder
    backends: PlatformBackends
    engine: EngineService
    controller: DictationController
    notifier: TrayNotifier
    tray: Tray
    menu: TrayMenu
    downloader: ModelDownloader
    download_offer: DownloadOffer
    models_dir: Path
    clipboard: QtClipboard
    selection: QtClipboard | None  # X11's PRIMARY, for xterm-like terminals
    report_path: Path | None
    acceleration: AccelerationStep | None  # only in an installed app (packaging/)
    doctor: DoctorLauncher
    settings_window: SettingsWindow | None = None

    def handle(self, command: str) -> bool:
        """A command from another `nanodictate` process (single-instance handoff)."""
        if command == "show":
            self.show_settings()
            return True
        return self.controller.command(command)

    def show_settings(self) -> None:
        from nanodictate.ui.settings_window import SettingsWindow

        if self.settings_window is None:
            self.settings_window = SettingsWindow(self.settings)
        window = self.settings_window
        window.reload()
        window.show()
        window.raise_()
        window.activateWindow()

    def start_services(self) -> list[str]:
        """After the icon is up: hotkeys, microphone, and what the user must be told."""
        from nanodictate import settings as S
        from nanodictate.core.models.store import folder_problem, model_folder, spec_for
        from nanodictate.ui.setting_effects import start_microphone

        hotkeys, notifier = self.backends.hotkeys, self.notifier
        available, reason = hotkeys.availability()
        if available:
            hotkeys.start(self.controller.hotkey_event)
            problems = self.controller.apply_hotkeys()
        else:
            problems = [reason]
            notifier.show(
                "No global hotkeys here",
                f"{reason} Bind a key to `nanodictate toggle` in your desktop's keyboard settings.",
                level="warning",
            )
        if self.settings.damaged_backup is not None:
            notifier.show(
                "Settings were damaged",
                "The settings file could not be read, so nanodictate uses its defaults. The "
                f"old file is kept as {self.settings.damaged_backup}.",
                level="warning",
            )
        start_microphone(self.controller)
        self.controller.offer_recovery()
        speech_model = spec_for(self.settings.get(S.MODEL))
        problem = folder_problem(speech_model, model_folder(speech_model, self.models_dir))
        first_run = (
            self.acceleration is not None and not self.acceleration.installer.state().gpu_offered
        )
        if problem is not None:
            log.warning("Speech model not usable: %s", problem)
            if first_run:  # right after install: the dialog with size and languages, at once
                self.download_offer.confirm()
            else:
                self.download_offer.offer(problem)
        if self.acceleration is not None:
            self.acceleration.at_start()
        return problems

    def report(self, record: dict[str, Any]) -> None:
        _write_report(self.report_path, record)

    def shutdown(self) -> None:
        log.info("Shutting down")
        steps = [
            self.controller.shutdown,
            self.backends.close,
            self.recorder.close,
            self.engine.stop,
            self.downloader.cancel,
            self.history.close,
            self.clipboard.release,
        ]
        if self.selection is not None:
            steps.append(self.selection.release)
        for step in steps:
            try:
                step()
            except Exception:
                log.exception("Shutdown step %s failed", getattr(step, "__qualname__", step))
        self.tray.icon.hide()


def build(qt: QApplication) -> TrayApp:
    import sounddevice
    from PySide6.QtGui import QClipboard, QGuiApplication
    from PySide6.QtWidgets import QSystemTrayIcon

    from nanodictate import settings as S
    from nanodictate.core.history import History
    from nanodictate.core.models.store import default_cache_dir, spec_for
    from nanodictate.core.recorder import Recorder, list_input_devices
    from nanodictate.core.runtime_install import RuntimeInstaller, installed_layout
    from nanodictate.core.spool import RecordingSpool
    from nanodictate.core.text_output import TextOutput
    from nanodictate.engines import engine_factory, models_dir_from
    from nanodictate.platform import select_backends
    from nanodictate.ui.acceleration_dialog import AccelerationStep, DoctorLauncher
    from nanodictate.ui.background import BackgroundLane
    from nanodictate.ui.clipboard import QtClipboard
    from nanodictate.ui.controller import DictationController
    from nanodictate.ui.download_dialog import DownloadOffer
    from nanodictate.ui.gui_call import GuiCallTimeout, GuiInvoker
    from nanodictate.ui.menu import TrayMenu
    from nanodictate.ui.model_download import ModelDownloader
    from nanodictate.ui.notifications import TrayNotifier
    from nanodictate.ui.settings_store import IniFileStore
    from nanodictate.ui.sounds import Sounds
    from nanodictate.ui.tray import Tray
    from nanodictate.ui.worker import EngineService

    settings = S.Settings(open_store=IniFileStore)  # the INI file in the config folder
    recorder = Recorder(
        sounddevice,
        device=settings.get(S.MICROPHONE) or None,
        max_seconds=float(settings.get(S.MAX_RECORDING_SECONDS)),
        keep_open=settings.get(S.KEEP_MICROPHONE_OPEN),
    )
    backends = select_backends()  # logs the choice once
    keyboard_ok, _reason = backends.keyboard.availability()
    focus_ok, _reason = backends.focus.availability()
    clipboard = QtClipboard()
    selection = (
        QtClipboard(mode=QClipboard.Mode.Selection)
        if QGuiApplication.clipboard().supportsSelection()
        else None
    )
    icon = QSystemTrayIcon()  # first: the notifier needs it
    notifier = TrayNotifier(icon)
    gui = GuiInvoker()

    def tell_from_engine(title: str, message: str) -> None:
        # On the engine thread: the notifier is the GUI thread's. A GUI thread too busy to
        # answer in time still shows the notice once it is free (the call stays queued).
        with contextlib.suppress(GuiCallTimeout):
            gui.call(lambda: notifier.show(title, message, level="warning"))

    models_dir = models_dir_from(settings)
    engine = EngineService(
        engine_factory(models_dir, default_cache_dir(), settings, tell_from_engine)
    )
    if os.environ.get(TEST_MINUTE_ENV):
        engine.worker.minute_ms = int(os.environ[TEST_MINUTE_ENV])
    report = os.environ.get(TEST_REPORT_ENV)
    history = History(max_entries=settings.get(S.HISTORY_MAX_ENTRIES))
    controller = DictationController(
        settings=settings,
        recorder=recorder,
        engine=engine,
        history=history,
        output=TextOutput(
            clipboard,
            backends.keyboard if keyboard_ok else None,
            backends.focus if focus_ok else None,
            selection=selection,
        ),
        notifier=notifier,
        hotkeys=backends.hotkeys,
        focus=backends.focus if focus_ok else None,
        sounds=Sounds(sounddevice),
        spool=RecordingSpool(),
    )
    tray = Tray(controller, settings, icon=icon)
    machine_lane = BackgroundLane("machine")  # GPU runtime installs, doctor checks
    layout = installed_layout()  # None in a source checkout: no runtime of ours to change
    acceleration = (
        AccelerationStep(RuntimeInstaller(layout), notifier, tray, machine_lane) if layout else None
    )
    doctor = DoctorLauncher(machine_lane)
    downloader = ModelDownloader(models_dir, speech_model=lambda: spec_for(settings.get(S.MODEL)))
    menu = TrayMenu(
        settings,
        controller,
        history,
        on_settings=lambda: parts.show_settings(),
        on_quit=qt.quit,
        # Opens the confirmation dialog; only its Download button downloads.
        on_download=lambda: parts.download_offer.confirm(),
        list_microphones=lambda: [d.name for d in list_input_devices(sounddevice)],
        on_acceleration=acceleration.open if acceleration else None,
        on_doctor=doctor.open,
    )
    tray.icon.setContextMenu(menu)
    download_offer = DownloadOffer(downloader, notifier, menu, tray)
    controller.model_missing.connect(download_offer.offer)
    parts = TrayApp(
        qt=qt,
        settings=settings,
        history=history,
        recorder=recorder,
        backends=backends,
        engine=engine,
        controller=controller,
        notifier=notifier,
        tray=tray,
        menu=menu,
        downloader=downloader,
        download_offer=download_offer,
        models_dir=models_dir,
        clipboard=clipboard,
        selection=selection,
        report_path=Path(report) if report else None,
        acceleration=acceleration,
        doctor=doctor,
    )
    if parts.report_path is not None:
        controller.dictation_finished.connect(parts.report)
        tray.tooltip_changed.connect(
            lambda text: parts.report(
                {"event": "tray", "state": tray.state.value, "tooltip": text, "time": time.time()}
            )
        )

    def on_setting(setting: Any, value: Any) -> None:
        if setting is S.START_AT_LOGIN:
            from nanodictate.platform import autostart

            if not autostart.set_enabled(bool(value)):
                notifier.show("Start at login", "Not supported on this system yet.")

    settings.add_listener(on_setting)
    return parts
