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

import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TEST_REPORT_ENV = "NANODICTATE_TEST_REPORT"
TEST_MINUTE_ENV = "NANODICTATE_TEST_MINUTE_MS"
TRAY_WAIT_ENV = "NANODICTATE_TRAY_WAIT"
DEFAULT_TRAY_WAIT_S = 5.0


def _verbosity(argv: Sequence[str]) -> int:
    count = 0
    for arg in argv:
        if arg == "--verbose":
            count += 1
        elif arg.startswith("-") and not arg.startswith("--") and set(arg[1:]) == {"v"}:
            count += len(arg) - 1
    return count


def _models_dir(settings: Any) -> Path:
    from nanodictate import settings as S
    from nanodictate.core.models.store import MODELS_DIR_ENV, default_models_dir

    if os.environ.get(MODELS_DIR_ENV):
        return default_models_dir()
    chosen = settings.get(S.MODEL_DIR).strip()
    return Path(chosen).expanduser() if chosen else default_models_dir()


def _engine_factory(models_dir: Path, cache_dir: Path) -> Any:
    def make() -> Any:
        # Runs on the engine thread at the first request. The engine itself runs in a child
        # process: a crash in native code cannot take the tray and the recording with it.
        from nanodictate.core.asr.engine_process import EngineConfig, EngineProcess
        from nanodictate.core.models.store import FSMN_VAD, FUN_ASR_MLT_NANO, model_folder

        vad = model_folder(FSMN_VAD, models_dir)
        return EngineProcess(
            EngineConfig(
                model_folder(FUN_ASR_MLT_NANO, models_dir),
                vad_dir=vad if vad.is_dir() else None,
                cache_dir=cache_dir,
            )
        )

    return make


def _wait_for_tray(app: Any, seconds: float) -> bool:
    from PySide6.QtWidgets import QSystemTrayIcon

    deadline = time.monotonic() + seconds
    while not QSystemTrayIcon.isSystemTrayAvailable():
        if time.monotonic() >= deadline:
            return False
        app.processEvents()
        time.sleep(0.1)
    return True


def _write_report(path: Path | None, record: dict[str, Any]) -> None:
    if path is None:
        return
    import json

    with path.open("a", encoding="utf-8") as stream:
        stream.write(json.dumps(record) + "\n")


def run_app(argv: Sequence[str]) -> int:
    started = time.monotonic()
    import platformdirs
    from PySide6.QtWidgets import QApplication

    from nanodictate.log_setup import configure_logging
    from nanodictate.ui.single_instance import InstanceServer, send_command

    configure_logging(
        # cli.main passes [] when it parsed sys.argv itself.
        _verbosity(argv or sys.argv[1:]),
        Path(platformdirs.user_log_dir("nanodictate", appauthor=False)) / "nanodictate.log",
    )
    app = QApplication.instance() or QApplication(["nanodictate"])
    assert isinstance(app, QApplication)
    app.setApplicationName("nanodictate")
    app.setQuitOnLastWindowClosed(False)

    # One instance per user: hand over to the running one.
    holder: dict[str, Any] = {}
    server = InstanceServer(lambda command: holder["handle"](command))
    if not server.listen():
        answer = send_command("show")
        print("nanodictate is already running" + ("; opened its settings." if answer else "."))
        return 0

    wait = float(os.environ.get(TRAY_WAIT_ENV, DEFAULT_TRAY_WAIT_S))
    if not _wait_for_tray(app, wait):
        message = (
            "nanodictate: no system tray found. nanodictate lives in the tray; on GNOME install "
            "the 'AppIndicator and KStatusNotifierItem Support' extension, elsewhere start a "
            "panel with a system tray, then start nanodictate again."
        )
        print(message, file=sys.stderr)
        log.error(message)
        server.close()
        return 1

    parts = _build(app, holder)
    report_path: Path | None = parts["report_path"]
    tray = parts["tray"]
    tray.icon.show()
    tray_ms = (time.monotonic() - started) * 1000
    log.info("Tray icon shown %.0f ms after launch", tray_ms)

    from PySide6.QtCore import QTimer

    def after_show() -> None:
        # After the icon is up, so slow parts (grabs, opening the microphone) cannot delay it.
        problems = _start_services(parts)
        from nanodictate.core.asr.memory import process_rss

        _write_report(
            report_path,
            {
                "event": "started",
                "tray_ms": round(tray_ms, 1),
                "ready_ms": round((time.monotonic() - started) * 1000, 1),
                "rss_mb": round(process_rss() / 2**20, 1),
                "platform": parts["backends"].name,
                "hotkey_problems": problems,
                "pid": os.getpid(),
                "tray_state": tray.state.value,
                "tooltip": tray.tooltip_text(),
            },
        )

    QTimer.singleShot(0, after_show)
    _quit_on_signals(app)
    try:
        return int(app.exec())
    finally:
        _shutdown(parts)
        server.close()


def _quit_on_signals(app: Any) -> None:
    """SIGTERM/SIGINT end the app cleanly (model unloaded, grabs released, history closed).

    Python runs signal handlers only between bytecodes; a cheap timer gives it the chance
    while Qt's loop sleeps in C++.
    """
    import signal

    from PySide6.QtCore import QTimer

    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_args: app.quit())
    ticker = QTimer(app)
    ticker.timeout.connect(lambda: None)
    ticker.start(250)


def _build(app: Any, holder: dict[str, Any]) -> dict[str, Any]:
    import sounddevice

    from nanodictate import settings as S
    from nanodictate.core.history import History
    from nanodictate.core.models.store import default_cache_dir
    from nanodictate.core.recorder import Recorder, list_input_devices
    from nanodictate.core.spool import RecordingSpool
    from nanodictate.core.text_output import TextOutput
    from nanodictate.platform import select_backends
    from nanodictate.ui.clipboard import QtClipboard
    from nanodictate.ui.controller import DictationController
    from nanodictate.ui.download_dialog import DownloadOffer
    from nanodictate.ui.menu import TrayMenu
    from nanodictate.ui.model_download import ModelDownloader
    from nanodictate.ui.notifications import TrayNotifier
    from nanodictate.ui.sounds import Sounds
    from nanodictate.ui.tray import Tray
    from nanodictate.ui.worker import EngineService

    settings = S.Settings()
    history = History(max_entries=settings.get(S.HISTORY_MAX_ENTRIES))
    microphone = settings.get(S.MICROPHONE)
    recorder = Recorder(
        sounddevice,
        device=microphone or None,
        max_seconds=float(settings.get(S.MAX_RECORDING_SECONDS)),
        keep_open=settings.get(S.KEEP_MICROPHONE_OPEN),
    )
    backends = select_backends()  # logs the choice once
    keyboard_ok, _reason = backends.keyboard.availability()
    focus_ok, _reason = backends.focus.availability()
    clipboard = QtClipboard()
    # X11's PRIMARY selection, which xterm-like terminals paste with Shift+Insert.
    from PySide6.QtGui import QClipboard, QGuiApplication

    selection = (
        QtClipboard(mode=QClipboard.Mode.Selection)
        if QGuiApplication.clipboard().supportsSelection()
        else None
    )
    output = TextOutput(
        clipboard,
        backends.keyboard if keyboard_ok else None,
        backends.focus if focus_ok else None,
        selection=selection,
    )
    models_dir = _models_dir(settings)
    engine = EngineService(_engine_factory(models_dir, default_cache_dir()))
    if os.environ.get(TEST_MINUTE_ENV):
        engine.worker.minute_ms = int(os.environ[TEST_MINUTE_ENV])
    report = os.environ.get(TEST_REPORT_ENV)
    report_path = Path(report) if report else None

    # The tray icon first (the notifier needs it), then the controller that drives it.
    from PySide6.QtWidgets import QSystemTrayIcon

    icon = QSystemTrayIcon()
    notifier = TrayNotifier(icon)
    controller = DictationController(
        settings=settings,
        recorder=recorder,
        engine=engine,
        history=history,
        output=output,
        notifier=notifier,
        hotkeys=backends.hotkeys,
        focus=backends.focus if focus_ok else None,
        sounds=Sounds(sounddevice),
        spool=RecordingSpool(),
    )
    if report_path is not None:
        controller.dictation_finished.connect(lambda record: _write_report(report_path, record))
    tray = Tray(controller, settings, icon=icon)
    if report_path is not None:
        tray.tooltip_changed.connect(
            lambda text: _write_report(
                report_path,
                {"event": "tray", "state": tray.state.value, "tooltip": text, "time": time.time()},
            )
        )
    downloader = ModelDownloader(models_dir)
    windows: dict[str, Any] = {}

    def show_settings() -> None:
        from nanodictate.ui.settings_window import SettingsWindow

        window = windows.get("settings")
        if window is None:
            window = windows["settings"] = SettingsWindow(settings)
        window.reload()
        window.show()
        window.raise_()
        window.activateWindow()

    menu = TrayMenu(
        settings,
        controller,
        history,
        on_settings=show_settings,
        on_quit=app.quit,
        # Opens the confirmation dialog; only its Download button downloads.
        on_download=lambda: download_offer.confirm(),
        list_microphones=lambda: [d.name for d in list_input_devices(sounddevice)],
    )
    tray.icon.setContextMenu(menu)

    download_offer = DownloadOffer(downloader, notifier, menu, tray)
    controller.model_missing.connect(download_offer.offer)

    def handle(command: str) -> bool:
        if command == "show":
            show_settings()
            return True
        return controller.command(command)

    holder["handle"] = handle

    def on_setting(setting: Any, value: Any) -> None:
        if setting is S.START_AT_LOGIN:
            from nanodictate.platform import autostart

            if not autostart.set_enabled(bool(value)):
                notifier.show("Start at login", "Not supported on this system yet.")

    settings.add_listener(on_setting)
    return {
        "app": app,
        "settings": settings,
        "history": history,
        "recorder": recorder,
        "backends": backends,
        "engine": engine,
        "controller": controller,
        "tray": tray,
        "menu": menu,
        "notifier": notifier,
        "downloader": downloader,
        "models_dir": models_dir,
        "report_path": report_path,
        "offer_download": download_offer.offer,
        "clipboard": clipboard,
        "selection": selection,
    }


def _start_services(parts: dict[str, Any]) -> list[str]:
    from nanodictate.core.models.store import FUN_ASR_MLT_NANO, folder_problem, model_folder
    from nanodictate.ui.setting_effects import start_microphone

    controller, backends, notifier = parts["controller"], parts["backends"], parts["notifier"]
    problems: list[str] = []
    available, reason = backends.hotkeys.availability()
    if available:
        backends.hotkeys.start(controller.hotkey_event)
        problems = controller.apply_hotkeys()
    else:
        problems = [reason]
        notifier.show(
            "No global hotkeys here",
            f"{reason} Bind a key to `nanodictate toggle` in your desktop's keyboard settings.",
            level="warning",
        )
    backup = parts["settings"].damaged_backup
    if backup is not None:
        notifier.show(
            "Settings were damaged",
            f"The settings file could not be read, so nanodictate uses its defaults. The old "
            f"file is kept as {backup}.",
            level="warning",
        )
    start_microphone(controller)
    controller.offer_recovery()
    folder = model_folder(FUN_ASR_MLT_NANO, parts["models_dir"])
    problem = folder_problem(FUN_ASR_MLT_NANO, folder)
    if problem is not None:
        log.warning("Speech model not usable: %s", problem)
        parts["offer_download"](problem)
    return problems


def _shutdown(parts: dict[str, Any]) -> None:
    log.info("Shutting down")
    steps = (
        parts["controller"].shutdown,
        parts["backends"].close,
        parts["recorder"].close,
        parts["engine"].stop,
        parts["downloader"].cancel,
        parts["history"].close,
        parts["clipboard"].release,
        *([parts["selection"].release] if parts["selection"] is not None else []),
    )
    for step in steps:
        try:
            step()
        except Exception:
            log.exception("Shutdown step %s failed", getattr(step, "__qualname__", step))
    parts["tray"].icon.hide()
