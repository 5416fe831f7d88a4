"""The dictation's side of the microphone: start, stop and cancel a recording with its sounds,
the input level while it runs (`level_changed`, the one poll of the recorder's level: the tray
icon and the recording overlay both follow it), and the recorder's own stops (time limit,
device lost) brought to the GUI thread with what the user is told about them."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot

from nanodictate import settings as S
from nanodictate.core import messages
from nanodictate.core.recorder import MicrophoneError, Recorder, Recording, StopReason
from nanodictate.ui.notifications import NotifierLike
from nanodictate.ui.sounds import Sounds

log = logging.getLogger(__name__)

LEVEL_INTERVAL_MS = 66  # ≈15 Hz: smooth enough for a tray icon and a level bar, cheap
STALL_S = 2.0  # no audio callback for this long while recording = the device is gone


class MicrophoneLink(QObject):
    level_changed = Signal(float)  # RMS while recording
    stopped = Signal(str)  # StopReason value: the recorder stopped by itself (GUI thread)

    _recorder_stopped = Signal(str)  # from PortAudio's thread

    def __init__(
        self,
        recorder: Recorder,
        settings: S.Settings,
        notifier: NotifierLike,
        sounds: Sounds | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.recorder, self.settings, self.notifier = recorder, settings, notifier
        self.sounds = sounds
        self._clock = clock
        self._started_at: float | None = None  # key-down of the recording running, if any
        self._level_timer = QTimer(self)
        self._level_timer.setInterval(LEVEL_INTERVAL_MS)
        self._level_timer.timeout.connect(self._poll_level)
        self._recorder_stopped.connect(
            self._on_recorder_stopped, Qt.ConnectionType.QueuedConnection
        )
        recorder.on_stop = lambda reason: self._recorder_stopped.emit(str(reason))

    def start(self, now: float) -> str | None:
        """Start recording (the pre-roll keeps what came before `now`, the key-down); None,
        or the microphone's problem, which the user has been shown."""
        try:
            self.recorder.start()
        except MicrophoneError as error:
            self.notifier.show("No microphone", str(error), level="error")
            return str(error)
        self._started_at = now
        self._sound("start")
        self._level_timer.start()
        return None

    def stop(self) -> Recording:
        self._end()
        recording = self.recorder.stop()
        self._sound("stop")
        return recording

    def cancel(self) -> None:
        self._end()
        self.recorder.cancel()

    def _end(self) -> None:
        self._started_at = None
        self._level_timer.stop()

    @property
    def first_frame_at(self) -> float | None:
        """When the running recording's first audio arrived (before `stop` or `cancel`)."""
        return self.recorder.first_frame_at

    @Slot(str)
    def _on_recorder_stopped(self, reason: str) -> None:
        if self._started_at is None:
            return
        stop = StopReason(reason)
        told = messages.recording_stopped(stop, self.recorder.max_seconds)
        if told is not None:
            self.notifier.show(told[0], told[1], level=told[2])
        self.stopped.emit(stop.value)

    def _poll_level(self) -> None:
        if self._started_at is None:
            return
        self.level_changed.emit(float(self.recorder.level))
        silent_for = self.recorder.seconds_since_last_frame()
        recording_for = self._clock() - self._started_at
        if silent_for is not None and silent_for > STALL_S and recording_for > STALL_S:
            log.warning("No audio for %.1f s: treating the microphone as lost", silent_for)
            self.recorder.mark_device_lost()

    def _sound(self, name: str) -> None:
        if self.sounds is not None and self.settings.get(S.SOUNDS):
            self.sounds.play(name)
