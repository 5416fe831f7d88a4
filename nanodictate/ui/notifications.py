"""Notifications through the tray (QSystemTrayIcon.showMessage).

A notification may carry an action run when the user clicks it. Qt's messageClicked does not
say which message was clicked, so the latest one's action runs; and Qt's X11 balloon also
emits it for clicks that were no choice (a right click on the tray icon). An action must
therefore be harmless to run by accident: open a window, never start work by itself.

The same message is not repeated within a few seconds (a held key that keeps failing must
not flood the desktop).

Qt places the X11 balloon from the icon's geometry, which stays empty until the tray host
has embedded the icon; a message shown before that would point at the screen's corner. So
messages wait until the geometry is known, at most a short while (some trays never report
one), and from then on are shown at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from PySide6.QtCore import QRect, QTimer
from PySide6.QtWidgets import QSystemTrayIcon

log = logging.getLogger(__name__)

REPEAT_AFTER_S = 8.0
SHOW_MS = 8000
PLACEMENT_WAIT_S = 2.0
_PLACEMENT_POLL_MS = 50
_ICONS = {
    "info": QSystemTrayIcon.MessageIcon.Information,
    "warning": QSystemTrayIcon.MessageIcon.Warning,
    "error": QSystemTrayIcon.MessageIcon.Critical,
}

_Message = tuple[str, str, QSystemTrayIcon.MessageIcon, Callable[[], None] | None]


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
    def __init__(
        self,
        tray: QSystemTrayIcon,
        clock: Callable[[], float] = time.monotonic,
        *,
        geometry: Callable[[], QRect] | None = None,
        placement_wait_s: float = PLACEMENT_WAIT_S,
    ):
        self._tray = tray
        self._clock = clock
        self._geometry = geometry or tray.geometry
        self._placement_wait_s = placement_wait_s
        self._placed = False  # the icon had a geometry, or the wait for one is over
        self._deadline: float | None = None  # set by the first message
        self._waiting: list[_Message] = []
        self._poll = QTimer()
        self._poll.setInterval(_PLACEMENT_POLL_MS)
        self._poll.timeout.connect(self._show_waiting)
        self._action: Callable[[], None] | None = None
        self._recent: dict[tuple[str, str], float] = {}
        tray.messageClicked.connect(self._clicked)

    @property
    def waiting(self) -> int:
        """How many messages wait for the icon's place on screen."""
        return len(self._waiting)

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
        self._waiting.append((title, message, _ICONS.get(level, _ICONS["info"]), action))
        self._show_waiting()

    def _show_waiting(self) -> None:
        if not self._placed and not self._icon_placed():
            self._poll.start()
            return
        self._placed = True
        self._poll.stop()
        waiting, self._waiting = self._waiting, []
        for title, message, icon, action in waiting:
            self._action = action
            self._tray.showMessage(title, message, icon, SHOW_MS)

    def _icon_placed(self) -> bool:
        # Real time, not the injected clock: the wait is paced by the event loop's timer.
        if self._deadline is None:
            self._deadline = time.monotonic() + self._placement_wait_s
        return not self._geometry().isEmpty() or time.monotonic() >= self._deadline

    def _clicked(self) -> None:
        action, self._action = self._action, None
        if action is not None:
            action()
