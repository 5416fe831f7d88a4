"""The dictation's side of the engine worker: requests made from the settings, the engine's
state, memory and last load as the tray shows them, and what the user is told about the
engine itself (a memory fallback, a restart after a crash)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from nanodictate import settings as S
from nanodictate.core import messages
from nanodictate.core.dictation import Dictation
from nanodictate.core.profiles import profile_hotwords
from nanodictate.core.transcriber import EngineState, LoadReport
from nanodictate.ui.engine_requests import (
    Failure,
    IdlePolicy,
    LoadRequest,
    QueueFull,
    TranscribeRequest,
    UnloadRequest,
)
from nanodictate.ui.worker import EngineService


class EngineLink(QObject):
    state_changed = Signal(str)  # EngineState value
    memory_changed = Signal(object)  # MemoryReport or None
    loaded = Signal(object)  # LoadReport

    def __init__(self, service: EngineService, settings: S.Settings, notifier: Any) -> None:
        super().__init__()
        self.service = service
        self.worker = service.worker
        self.settings = settings
        self.notifier = notifier
        self.state = EngineState.UNLOADED
        self.memory: Any = None
        self.last_load: LoadReport | None = None
        # A load asked for and not yet begun: presses while the engine's process starts must
        # not queue one load each (they filled the queue, and a dictation was refused).
        self._load_asked = False
        self.worker.state_changed.connect(self._on_state)
        self.worker.load_failed.connect(self._on_load_failed)
        self.worker.memory_changed.connect(self._on_memory)
        self.worker.loaded.connect(self._on_loaded)
        self.worker.engine_restarting.connect(self._on_restarting)

    # ------------------------------------------------------------------ requests

    def submit(self, request: Any, busy_message: str | None = None, *, tell: bool = True) -> bool:
        try:
            self.service.submit(request)
            return True
        except QueueFull as error:
            if tell:
                self.notifier.show("Busy", busy_message or str(error), level="warning")
            return False

    def load(self) -> bool:
        if self._load_asked:
            return True
        request = LoadRequest(self.settings.get(S.PRECISION), self.settings.get(S.DEVICE))
        self._load_asked = self.submit(request)
        return self._load_asked

    def unload(self, reason: str, *, rebuild: bool = False) -> bool:
        """`rebuild`: the next dictation builds a new engine from the settings."""
        return self.submit(UnloadRequest(reason, rebuild))

    def keep_loaded(self, recording: bool) -> None:
        """True at key-down, False when the recording ends: meanwhile the idle timers leave
        the model loaded. Otherwise a recording longer than the idle time had the model
        loaded at its key-down unloaded midway and loaded again at key-up (a 10-minute
        recording with "unload after 5 min": tests/desktop/test_app_faults_devices.py)."""
        self.worker.keep_loaded = recording

    def apply_idle_policy(self) -> None:
        minutes = self.settings.get(S.UNLOAD_AFTER_MINUTES)
        self.submit(IdlePolicy(minutes, self.settings.get(S.TWO_TIER_IDLE)))

    def transcribe(self, dictation: Dictation, samples: Any, *, tell_if_busy: bool = True) -> bool:
        """False when the engine's queue is full (the caller keeps the recording)."""
        hotwords: list[str] = self.settings.get(S.HOTWORDS)
        return self.submit(
            TranscribeRequest(
                job_id=dictation.job_id,
                audio=samples,
                sample_rate=16000,
                language=dictation.language,
                precision=self.settings.get(S.PRECISION),
                device=self.settings.get(S.DEVICE),
                hotwords=profile_hotwords(dictation.profile, hotwords),
                itn=self.settings.get(S.ITN),
            ),
            "Dictations are coming faster than the speech engine can keep up. This one is kept "
            "and will be transcribed as soon as it catches up.",
            tell=tell_if_busy,
        )

    # ------------------------------------------------------------------ what it says

    @Slot(object)
    def _on_state(self, state: EngineState) -> None:
        self.state = EngineState(state)
        if self.state is not EngineState.UNLOADED:
            self._load_asked = False
        self.state_changed.emit(self.state.value)

    @Slot(object)
    def _on_load_failed(self, _failure: Failure) -> None:
        self._load_asked = False

    @Slot(object)
    def _on_memory(self, report: Any) -> None:
        self.memory = report
        self.memory_changed.emit(report)

    @Slot(object)
    def _on_loaded(self, report: LoadReport) -> None:
        self.last_load = report
        if report.fallback_reason:
            device = "GPU" if report.device == "cuda" else "CPU"
            self.notifier.show(
                "Model loaded with less memory",
                f"Using {report.precision.value.upper()} on the {device}: "
                f"{report.fallback_reason}.",
                level="warning",
            )
        self.loaded.emit(report)

    @Slot(object)
    def _on_restarting(self, failure: Failure) -> None:
        title, message = messages.engine_restarting(failure.error)
        self.notifier.show(title, message, level="warning")
