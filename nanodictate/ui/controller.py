"""The Qt adapter of a dictation: hotkeys and commands in; recording, engine, paste out.

What a dictation is and when it starts, stops or is dropped is decided in `core.dictation`;
this class carries it out on the GUI thread, through one link per part: the microphone
(`ui.microphone_link`), the engine (`ui.engine_link`), the hotkeys (`ui.hotkey_registration`)
and the text's way out (`ui.delivery`). Everything slow happens elsewhere: hotkey events
arrive on the backend's thread (timed there), the recorder's callbacks on PortAudio's thread,
the engine on its worker thread (`ui.worker`), the paste on a background lane.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal, Slot

from nanodictate import settings as S
from nanodictate.core import dictation as D
from nanodictate.core import messages
from nanodictate.core.errors import ModelMissingError
from nanodictate.core.history import Entry, History
from nanodictate.core.ports import FocusTracker
from nanodictate.core.profiles import profile_language
from nanodictate.core.recorder import Recorder, Recording, StopReason
from nanodictate.core.spool import RecordingSpool
from nanodictate.core.text_output import OutputResult, TextOutput
from nanodictate.core.transcriber import EngineState, LoadReport
from nanodictate.platform.base import HotkeyBackend
from nanodictate.ui.delivery import TextDelivery
from nanodictate.ui.engine_link import EngineLink
from nanodictate.ui.engine_requests import Failure, TranscribeDone, TranscribeRequest
from nanodictate.ui.hotkey_registration import HotkeyRegistration
from nanodictate.ui.live_link import LiveLink, is_piece
from nanodictate.ui.microphone_link import MicrophoneLink
from nanodictate.ui.notifications import NotifierLike
from nanodictate.ui.setting_effects import apply_setting
from nanodictate.ui.sounds import Sounds
from nanodictate.ui.worker import EngineService

log = logging.getLogger(__name__)


class DictationController(QObject):
    state_changed = Signal(str)  # AppState value
    model_missing = Signal(str)  # message
    dictation_finished = Signal(dict)  # core.dictation.dictation_record, never the text

    # `pressed` travels as an int: PySide6 6.12 mis-counts references to True/False passed
    # through a queued signal from a Python thread (the interpreter aborts at exit).
    _hotkey = Signal(str, int, float)

    def __init__(
        self,
        *,
        settings: S.Settings,
        recorder: Recorder,
        engine: EngineService,
        history: History,
        output: TextOutput,
        notifier: NotifierLike,
        hotkeys: HotkeyBackend | None = None,
        focus: FocusTracker | None = None,
        sounds: Sounds | None = None,
        spool: RecordingSpool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.settings, self.recorder = settings, recorder
        self.history, self.notifier = history, notifier
        self.engine = EngineLink(engine, settings, notifier)
        self.engine_state_changed = self.engine.state_changed  # for the tray and menu
        self.memory_changed = self.engine.memory_changed
        self.microphone = MicrophoneLink(recorder, settings, notifier, sounds, clock)
        # RMS while recording, for the tray icon and the recording overlay.
        self.level_changed = self.microphone.level_changed
        self.spool = spool
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
            focus=focus,
        )
        self.delivery.delivered.connect(self._on_delivered)
        # Transcription while the user speaks, the live preview, paste at each pause.
        self.live = LiveLink(engine.worker, recorder, settings, self.delivery, self.level_changed)
        self.history_changed = self.delivery.history_changed
        self._error: str | None = None
        self._state = D.AppState.UNLOADED
        self._retranscriptions: set[int] = set()  # job ids, told when their text is copied
        self._hotkey.connect(self._on_hotkey, Qt.ConnectionType.QueuedConnection)
        self.microphone.stopped.connect(self._on_recorder_stopped)
        self.engine.state_changed.connect(lambda _state: self._update_state())
        self.engine.loaded.connect(self._on_loaded)
        worker = engine.worker
        worker.load_failed.connect(self._on_load_failed)
        worker.transcribed.connect(self._on_transcribed)
        worker.transcribe_failed.connect(self._on_transcribe_failed)
        worker.drained.connect(self._send_deferred)
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
        target = self.delivery.target_window()
        self._error = self.microphone.start(now)  # None, or the problem the user was shown
        if self._error is not None:
            return
        profile = self.delivery.profile_for(target)
        language = profile_language(profile, language, self.settings.get(S.LANGUAGE))
        dictation = self.book.begin(trigger, hold=hold, language=language, now=now, target=target)
        dictation.profile = profile
        self.live.begin(dictation)
        self.engine.keep_loaded(True)  # no idle unload while the user speaks
        self.hotkeys.cancel_key(True, trigger)
        if self.engine.state is EngineState.UNLOADED:
            self.engine.load()  # loads while the user speaks
        self._update_state()

    def _finish(self, now: float, reason: StopReason = StopReason.STOPPED) -> None:
        dictation = self.book.take_active()
        if dictation is None:
            return
        self.engine.keep_loaded(False)
        self.live.end(dictation)
        self.hotkeys.cancel_key(False)
        dictation.first_frame_at = self.microphone.first_frame_at
        if D.is_slip(dictation, now, reason):
            self.microphone.cancel()
            log.info("Hotkey tapped for %.0f ms: ignored", (now - dictation.key_down) * 1000)
            return self._dropped(dictation, "ignored_tap")
        dictation.key_up = now
        dictation.recording = self.microphone.stop()
        if dictation.recording.seconds <= 0:
            return self._dropped(dictation, "empty")
        dictation.spooled = self.delivery.keep(dictation.recording.samples, dictation.language)
        self._transcribe(dictation, dictation.recording.samples)
        self._update_state()

    def cancel(self) -> None:
        dictation = self.book.take_active()
        if dictation is None:
            return
        self.engine.keep_loaded(False)
        self.live.end(dictation, cancelled=True)
        self.microphone.cancel()
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
        """The recorder stopped by itself (time limit, device lost); the user was told."""
        self._finish(self._clock(), StopReason(reason))

    # ================================================================== kept recordings

    def offer_recovery(self) -> int:
        """At start: offer to transcribe recordings an earlier run left unfinished."""
        return self.delivery.offer_recovery(self.recover_recordings)

    def recover_recordings(self) -> None:
        """Transcribe every kept recording not already on its way; text to history only."""
        for entry, samples in self.delivery.unfinished(self.book.spooled_paths()):
            self._transcribe(self.book.recovered(entry, self._clock()), samples)
        self._update_state()

    def retranscribe(
        self, entry: Entry, language: str, precision: str, hotwords: Sequence[str]
    ) -> bool:
        """Transcribe a history entry's kept audio again, with another language, precision
        or hotwords. Like a recovered recording, no window awaits it: the text goes to the
        history and the clipboard (told with a notification), never pasted."""
        try:
            samples = self.history.audio.read(entry.id)
        except OSError as error:
            title = "Cannot re-transcribe"
            self.notifier.show(title, messages.reason(error), level="warning")
            return False
        dictation = self.book.new(
            D.RECOVERED_TRIGGER, hold=False, language=language, now=self._clock(), target=None
        )
        # Kept again with the new entry (when audio is kept), to be re-transcribed in turn.
        dictation.recording = Recording(samples, 16000, StopReason.STOPPED, None, 0.0)
        request = TranscribeRequest(
            job_id=dictation.job_id,
            audio=samples,
            sample_rate=16000,
            language=language,
            precision=precision,
            device=self.settings.get(S.DEVICE),
            hotwords=tuple(hotwords),
            itn=self.settings.get(S.ITN),
        )
        if not self.engine.submit(request):
            return False
        self.book.wait_for_text(dictation)
        self._retranscriptions.add(dictation.job_id)
        self._update_state()
        return True

    # ================================================================== engine

    def _transcribe(self, dictation: D.Dictation, samples: Any) -> None:
        # Told once per backlog, not once per refused recording.
        if self.engine.transcribe(dictation, samples, tell_if_busy=not self.book.deferred):
            self.book.wait_for_text(dictation)
        else:  # nothing is dropped
            self.book.defer(dictation, samples)

    @Slot()
    def _send_deferred(self) -> None:
        """The engine's queue drained: send what it could not take (refused again: kept)."""
        for dictation, samples in self.book.take_deferred():
            self._transcribe(dictation, samples)

    @Slot(object)
    def _on_loaded(self, _report: LoadReport) -> None:
        self._error = None
        self._update_state()

    @Slot(object)
    def _on_load_failed(self, failure: Failure) -> None:
        self._retranscriptions.discard(failure.job_id)
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
        self._retranscriptions.discard(failure.job_id)
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
        text = self.live.text_to_paste(dictation, done.result)
        if text:
            self.delivery.deliver(dictation, done, text)
        elif done.result.text.strip():  # all of it was pasted at the pauses
            self.delivery.text_is_safe(dictation)
            self._report(dictation, "dictation", done)
        else:
            self._retranscriptions.discard(dictation.job_id)
            self.delivery.text_is_safe(dictation)
            self.notifier.show("No speech heard", "Nothing was pasted.")
            self._report(dictation, "no_speech", done)
        self._update_state()

    @Slot(object, object, object)
    def _on_delivered(
        self, dictation: D.Dictation, done: TranscribeDone, outcome: OutputResult
    ) -> None:
        if not is_piece(done):  # a paste at a pause: the dictation goes on
            self._report(dictation, "dictation", done, outcome)
        if dictation.job_id in self._retranscriptions:
            self._retranscriptions.discard(dictation.job_id)
            if outcome.ok:
                self.notifier.show(
                    "Re-transcribed", "The new text is on the clipboard and first in Recent."
                )
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
        self,
        dictation: D.Dictation,
        event: str,
        done: TranscribeDone | None = None,
        outcome: OutputResult | None = None,
    ) -> None:
        record = D.dictation_record(
            dictation, event, self._clock(), done, outcome, self.engine.last_load
        )
        self.dictation_finished.emit(record)

    def shutdown(self) -> None:
        if self.book.active is not None:
            self.cancel()
        self.live.shutdown()
        self.delivery.shutdown()
        self.settings.remove_listener(self._on_setting)
