"""The Qt adapter of a dictation: hotkeys and commands in; recording, engine, paste out.

What a dictation is and when it starts, stops or is dropped is decided in `core.dictation`;
this class carries it out on the GUI thread. Everything slow happens elsewhere: hotkey events
arrive on the backend's thread (timed there), the recorder's callbacks on PortAudio's thread,
the engine on its worker thread (`ui.worker`), the paste on a background lane.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot

from nanodictate import settings as S
from nanodictate.core import dictation as D
from nanodictate.core import messages
from nanodictate.core.errors import ModelMissingError
from nanodictate.core.recorder import MicrophoneError, StopReason
from nanodictate.core.spool import RecordingSpool
from nanodictate.core.transcriber import EngineState
from nanodictate.ui.delivery import TextDelivery
from nanodictate.ui.engine_link import EngineLink
from nanodictate.ui.hotkey_registration import HotkeyRegistration
from nanodictate.ui.setting_effects import apply_setting
from nanodictate.ui.worker import EngineService, Failure, TranscribeDone

log = logging.getLogger(__name__)

LEVEL_INTERVAL_MS = 66  # ≈15 Hz: smooth enough for a tray icon, cheap
STALL_S = 2.0  # no audio callback for this long while recording = the device is gone


class DictationController(QObject):
    state_changed = Signal(str)  # AppState value
    level_changed = Signal(float)  # RMS while recording
    model_missing = Signal(str)  # message
    dictation_finished = Signal(dict)  # core.dictation.dictation_record, never the text

    # `pressed` travels as an int: PySide6 6.12 mis-counts references to True/False passed
    # through a queued signal from a Python thread (the interpreter aborts at exit).
    _hotkey = Signal(str, int, float)
    _recorder_stopped = Signal(str)

    def __init__(
        self,
        *,
        settings: S.Settings,
        recorder: Any,  # core.recorder.Recorder
        engine: EngineService,
        history: Any,  # core.history.History
        output: Any,  # core.text_output.TextOutput
        notifier: Any,  # ui.notifications.NotifierLike
        hotkeys: Any = None,  # platform HotkeyBackend
        focus: Any = None,  # platform FocusTracker
        sounds: Any = None,  # ui.sounds.Sounds
        spool: RecordingSpool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.settings, self.recorder = settings, recorder
        self.history, self.notifier = history, notifier
        self.engine = EngineLink(engine, settings, notifier)
        self.engine_state_changed = self.engine.state_changed  # for the tray and menu
        self.memory_changed = self.engine.memory_changed
        self.focus, self.sounds, self.spool = focus, sounds, spool
        self.hotkeys = HotkeyRegistration(hotkeys, settings, notifier)
        self._clock = clock
        self.book = D.DictationBook()
        self.delivery = TextDelivery(
            settings=settings,
            history=history,
            output=output,
            notifier=notifier,
            spool=spool,
            clock=clock,
        )
        self.delivery.delivered.connect(self._on_delivered)
        self.history_changed = self.delivery.history_changed
        self._error: str | None = None
        self._state = D.AppState.UNLOADED
        self._level_timer = QTimer(self)
        self._level_timer.setInterval(LEVEL_INTERVAL_MS)
        self._level_timer.timeout.connect(self._poll_level)
        queued = Qt.ConnectionType.QueuedConnection
        self._hotkey.connect(self._on_hotkey, queued)
        self._recorder_stopped.connect(self._on_recorder_stopped, queued)
        self.engine.state_changed.connect(lambda _state: self._update_state())
        self.engine.loaded.connect(self._on_loaded)
        worker = engine.worker
        worker.load_failed.connect(self._on_load_failed)
        worker.transcribed.connect(self._on_transcribed)
        worker.transcribe_failed.connect(self._on_transcribe_failed)
        recorder.on_stop = lambda reason: self._recorder_stopped.emit(str(reason))
        settings.add_listener(self._on_setting)
        self.engine.apply_idle_policy()

    def _on_setting(self, setting: S.Setting[Any], value: Any) -> None:
        apply_setting(self, setting, value)

    # ================================================================== inputs

    def hotkey_event(self, hotkey_id: str, pressed: bool) -> None:
        """The HotkeyBackend callback: any thread; stamps the time and queues the event."""
        self._hotkey.emit(hotkey_id, int(pressed), self._clock())

    def command(self, name: str) -> bool:
        """toggle / start / stop / cancel (CLI, single-instance handoff, compositor bindings)."""
        decision = D.decide_command(name, self.book.active)
        if decision is None:
            return False
        self._carry_out(decision, D.COMMAND_TRIGGER, self._clock())
        return True

    @Slot(str, int, float)
    def _on_hotkey(self, hotkey_id: str, pressed: int, when: float) -> None:
        push_to_talk = self.settings.get(S.HOTKEY_MODE) == "push_to_talk"
        decision = D.decide(hotkey_id, bool(pressed), self.book.active, push_to_talk=push_to_talk)
        self._carry_out(decision, hotkey_id, when)

    def _carry_out(self, decision: D.Decision, trigger: str, when: float) -> None:
        if decision.action is D.Action.BEGIN:
            self._begin(trigger, decision.hold, decision.language, when)
        elif decision.action is D.Action.FINISH:
            self._finish(when)
        elif decision.action is D.Action.CANCEL:
            self.cancel()

    # ================================================================== recording

    def _begin(self, trigger: str, hold: bool, language: str | None, now: float) -> None:
        target = None
        if self.focus is not None:
            try:
                target = self.focus.focused_window()
            except Exception:
                log.warning("Cannot read the focused window", exc_info=True)
        try:
            self.recorder.start()
        except MicrophoneError as error:
            self._error = str(error)
            self.notifier.show("No microphone", str(error), level="error")
            return
        self._error = None
        language = language or self.settings.get(S.LANGUAGE)
        self.book.begin(trigger, hold=hold, language=language, now=now, target=target)
        self.hotkeys.cancel_key(True, trigger)
        if self.engine.state is EngineState.UNLOADED:
            self.engine.load()  # loads while the user speaks
        self._sound("start")
        self._level_timer.start()
        self._update_state()

    def _finish(self, now: float, reason: StopReason = StopReason.STOPPED) -> None:
        dictation = self.book.take_active()
        if dictation is None:
            return
        self._level_timer.stop()
        self.hotkeys.cancel_key(False)
        dictation.first_frame_at = getattr(self.recorder, "first_frame_at", None)
        if D.is_slip(dictation, now, reason):
            self.recorder.cancel()
            log.info("Hotkey tapped for %.0f ms: ignored", (now - dictation.key_down) * 1000)
            return self._dropped(dictation, "ignored_tap")
        dictation.key_up = now
        dictation.recording = self.recorder.stop()
        self._sound("stop")
        if dictation.recording.seconds <= 0:
            return self._dropped(dictation, "empty")
        dictation.spooled = self.delivery.keep(dictation.recording.samples, dictation.language)
        self._transcribe(dictation, dictation.recording.samples)
        self._update_state()

    def cancel(self) -> None:
        dictation = self.book.take_active()
        if dictation is None:
            return
        self._level_timer.stop()
        self.recorder.cancel()
        self.hotkeys.cancel_key(False)
        log.info("Dictation cancelled")
        self._dropped(dictation, "cancelled")

    def _dropped(self, dictation: D.Dictation, event: str) -> None:
        """A dictation ended without a transcription. With "unload immediately" the worker
        keeps the model loaded at key-down for the transcription; none comes, so unload now."""
        self._report(dictation, event)
        if self.settings.get(S.UNLOAD_AFTER_MINUTES) == 0:
            self.engine.unload("dictation ended without a transcription")
        self._update_state()

    @Slot(str)
    def _on_recorder_stopped(self, reason: str) -> None:
        if self.book.active is None:
            return
        stop = StopReason(reason)
        told = messages.recording_stopped(stop, self.recorder.max_seconds)
        if told is not None:
            self.notifier.show(told[0], told[1], level=told[2])
        self._finish(self._clock(), stop)

    def _poll_level(self) -> None:
        active = self.book.active
        if active is None:
            return
        self.level_changed.emit(float(self.recorder.level))
        silent_for = self.recorder.seconds_since_last_frame()
        recording_for = self._clock() - active.key_down
        if silent_for is not None and silent_for > STALL_S and recording_for > STALL_S:
            log.warning("No audio for %.1f s: treating the microphone as lost", silent_for)
            self.recorder.mark_device_lost()

    def _sound(self, name: str) -> None:
        if self.sounds is not None and self.settings.get(S.SOUNDS):
            self.sounds.play(name)

    # ================================================================== kept recordings

    def offer_recovery(self) -> int:
        """At start: offer to transcribe recordings an earlier run left unfinished."""
        return self.delivery.offer_recovery(self.recover_recordings)

    def recover_recordings(self) -> None:
        """Transcribe every kept recording not already on its way; text to history only."""
        for entry, samples in self.delivery.unfinished(self.book.spooled_paths()):
            dictation = self.book.new(
                D.RECOVERED_TRIGGER,
                hold=False,
                language=entry.language,
                now=self._clock(),
                target=None,
            )
            dictation.spooled = entry
            self._transcribe(dictation, samples)
        self._update_state()

    # ================================================================== engine

    def _transcribe(self, dictation: D.Dictation, samples: Any) -> None:
        if self.engine.transcribe(dictation, samples):
            self.book.wait_for_text(dictation)

    @Slot(object)
    def _on_loaded(self, _report: Any) -> None:
        self._error = None
        self._update_state()

    @Slot(object)
    def _on_load_failed(self, failure: Failure) -> None:
        dictation = self.book.done(failure.job_id)
        if dictation is not None:
            self._report(dictation, "failed")
        kept = dictation is not None and dictation.spooled is not None
        title, message = messages.load_failed(failure.error, recording_kept=kept)
        self._error = message
        if isinstance(failure.error, ModelMissingError):
            self.model_missing.emit(message)  # the download offer tells it
        else:
            self.notifier.show(title, message, level="error")
        self._update_state()

    @Slot(object)
    def _on_transcribe_failed(self, failure: Failure) -> None:
        dictation = self.book.done(failure.job_id)
        kept = dictation is not None and dictation.spooled is not None
        self._error = messages.transcription_failed(failure.error, recording_kept=kept)
        self.notifier.show("Transcription failed", self._error, level="error")
        if dictation is not None:
            self._report(dictation, "failed")
        self._update_state()

    # ================================================================== text out

    @Slot(object)
    def _on_transcribed(self, done: TranscribeDone) -> None:
        dictation = self.book.done(done.job_id)
        if dictation is None:
            return
        text = done.result.text.strip()
        if text:
            self.delivery.deliver(dictation, done, text)
        else:
            self.delivery.text_is_safe(dictation)
            self.notifier.show("No speech heard", "Nothing was pasted.")
            self._report(dictation, "no_speech", done)
        self._update_state()

    @Slot(object, object, object)
    def _on_delivered(self, dictation: D.Dictation, done: TranscribeDone, outcome: Any) -> None:
        self._report(dictation, "dictation", done, outcome)
        self._update_state()

    def apply_hotkeys(self) -> list[str]:
        return self.hotkeys.apply()

    # ================================================================== state

    @property
    def state(self) -> D.AppState:
        return self._state

    @property
    def recording(self) -> bool:
        return self.book.active is not None

    @property
    def error(self) -> str | None:
        return self._error

    def _update_state(self) -> None:
        state = D.app_state(
            self.book, engine=self.engine.state, pasting=self.delivery.running, error=self._error
        )
        if state != self._state:
            self._state = state
            self.state_changed.emit(state.value)

    def _report(
        self, dictation: D.Dictation, event: str, done: Any = None, outcome: Any = None
    ) -> None:
        record = D.dictation_record(
            dictation, event, self._clock(), done, outcome, self.engine.last_load
        )
        self.dictation_finished.emit(record)

    def shutdown(self) -> None:
        self._level_timer.stop()
        if self.book.active is not None:
            self.cancel()
        self.delivery.shutdown()
        self.settings.remove_listener(self._on_setting)
