"""The Qt process around the tray app: one QApplication, a system tray to live in, a clean end.

`app.run_app` uses these before and after it builds the app's parts (`app.build`); nothing
here knows what the parts are.
"""

from __future__ import annotations

import signal
import time

from PySide6.QtCore import QCoreApplication, QTimer
from PySide6.QtWidgets import QApplication, QSystemTrayIcon

NO_TRAY_MESSAGE = (
    "nanodictate: no system tray found. nanodictate lives in the tray; on GNOME install "
    "the 'AppIndicator and KStatusNotifierItem Support' extension, elsewhere start a "
    "panel with a system tray, then start nanodictate again."
)


def make_application() -> QApplication:
    """The process's QApplication (made once), which stays up when its last window closes."""
    app = QApplication.instance() or QApplication(["nanodictate"])
    assert isinstance(app, QApplication)
    app.setApplicationName("nanodictate")
    app.setQuitOnLastWindowClosed(False)
    return app


def wait_for_tray(app: QCoreApplication, seconds: float) -> bool:
    """Wait up to `seconds` for a system tray (at login the panel may start after us)."""
    deadline = time.monotonic() + seconds
    while not QSystemTrayIcon.isSystemTrayAvailable():
        if time.monotonic() >= deadline:
            return False
        app.processEvents()
        time.sleep(0.1)
    return True


def quit_on_signals(app: QCoreApplication) -> None:
    """SIGTERM/SIGINT end the app cleanly (model unloaded, grabs released, history closed).

    Python runs signal handlers only between bytecodes; a cheap timer gives it the chance
    while Qt's loop sleeps in C++.
    """
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_args: app.quit())
    ticker = QTimer(app)
    ticker.timeout.connect(lambda: None)
    ticker.start(250)
