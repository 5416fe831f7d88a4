"""Notifications through the tray (QSystemTrayIcon.showMessage).

A notification may carry an action (e.g. "download the model") run when the user clicks it;
Qt's messageClicked does not say which message was clicked, so the latest one's action runs.
The same message is not repeated within a few seconds (a held key that keeps failing must
not flood the desktop).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from PySide6.QtWidgets import QSystemTrayIcon

log = logging.getLogger(__name__)

REPEAT_AFTER_S = 8.0
_ICONS = {
    "info": QSystemTrayIcon.MessageIcon.Information,
    "warning": QSystemTrayIcon.MessageIcon.Warning,
    "error": QSystemTrayIcon.MessageIcon.Critical,
}


class NotifierLike(Protocol):
    def show(
        self,
        title: str,
        message: str,
        *,
        level: str = "info",
        action: Callable[[], None] | None = None,
    ) -> None: ...


class TrayNotifier:
    def __init__(self, tray: QSystemTrayIcon, clock: Callable[[], float] = time.monotonic):
        self._tray = tray
        self._clock = clock
        self._action: Callable[[], None] | None = None
        self._recent: dict[tuple[str, str], float] = {}
        tray.messageClicked.connect(self._clicked)

    def show(
        self,
        title: str,
        message: str,
        *,
        level: str = "info",
        action: Callable[[], None] | None = None,
    ) -> None:
        now = self._clock()
        key = (title, message)
        if now - self._recent.get(key, -REPEAT_AFTER_S) < REPEAT_AFTER_S:
            return
        self._recent[key] = now
        # Messages are written for the user and never contain dictated text, so logging
        # them keeps a record of what the user was told.
        log.log(30 if level != "info" else 20, "Notification: %s: %s", title, message)
        self._action = action
        self._tray.showMessage(title, message, _ICONS.get(level, _ICONS["info"]), 8000)

    def _clicked(self) -> None:
        action, self._action = self._action, None
        if action is not None:
            action()
