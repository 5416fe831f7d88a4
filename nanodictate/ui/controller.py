"""The dictation state machine: hotkeys and commands in; recording, engine jobs, history and
paste out. Lives on the GUI thread; everything slow happens elsewhere:

- hotkey events arrive on the backend's thread and are queued here through a signal (their
  time is taken on that thread, so latencies are measured from the real key event);
- the recorder's callbacks run on PortAudio's thread (again queued through a signal);
- the engine runs on its worker thread (`ui.worker`);
- the paste runs on a single paste thread, in order (it blocks for hundreds of ms).

Push-to-talk: key-down starts recording at once (and loading the model if it is not loaded),
key-up stops; a hold shorter than `MIN_HOLD_S` is a slip and does nothing. Toggle: the first
press starts, the next stops. The cancel key (Esc) is grabbed only while recording.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QCoreApplication, QEventLoop, QObject, Qt, QTimer, Signal, Slot

from nanodictate import settings as S
from nanodictate.core.errors import ModelMissingError, NanodictateError, OutOfMemoryError
from nanodictate.core.recorder import MicrophoneError, Recording, StopReason
from nanodictate.core.spool import RecordingSpool, SpooledRecording
from nanodictate.core.text_output import OutputResult, PasteMethod
from nanodictate.ui.icons import AppState
from nanodictate.ui.worker import (
    Failure,
    IdlePolicy,
    LoadRequest,
    QueueFull,
    TranscribeDone,
    TranscribeRequest,
    UnloadRequest,
)

log = logging.getLogger(__name__)

MIN_HOLD_S = 0.3
LEVEL_INTERVAL_MS = 66  # ≈15 Hz: smooth enough for a tray icon, cheap
STALL_S = 2.0  # no audio callback for this long while recording = the device is gone
SHUTDOWN_PASTE_WAIT_S = 5.0
TEST_REPORT_ENV = "NANODICTATE_TEST_REPORT"

DICTATE_ID = "dictate"
TOGGLE_ID = "toggle"
CANCEL_ID = "cancel"
CANCEL_HELD_ID = "cancel:held"
LANGUAGE_PREFIX = "lang:"


@dataclass
class Dictation:
    job_id: int
    trigger: str  # hotkey id or "command"
    hold: bool  # push-to-talk (stops on release) rather than toggle
    language: str
    key_down: float  # monotonic time of the key event
    target: Any  # WindowInfo that had focus at key-down (None if unknown)
    key_up: float | None = None
    recording: Recording | None = None
    first_frame_at: float | None = None
    # On disk from key-up until the text is in the history (None if the disk refused it).
    spooled: SpooledRecording | None = None
    history_problem: str | None = None  # why the text could not be written to the history


RECOVERED_TRIGGER = "recovered"


class DictationController(QObject):
    state_changed = Signal(str)  # AppState value
    level_changed = Signal(float)  # RMS while recording
    engine_state_changed = Signal(str)
    memory_changed = Signal(object)
    history_changed = Signal()
    model_missing = Signal(str)  # message
    dictation_finished = Signal(dict)  # the test-report record

    # `pressed` travels as an int: PySide6 6.12 mis-counts references to True/False passed
    # through a queued signal from a Python thread (the interpreter aborts at exit).
    _hotkey = Signal(str, int, float)
    _recorder_stopped = Signal(str)
    _paste_done = Signal(object, object)  # Dictation, OutputResult

    def __init__(
        self,
        *,
        settings: S.Settings,
        recorder: Any,  # nanodictate.core.recorder.Recorder
        engine: Any,  # ui.worker.EngineService (submit + .worker signals)
        history: Any,  # nanodictate.core.history.History
        output: Any,  # nanodictate.core.text_output.TextOutput
        notifier: Any,  # ui.notifications.NotifierLike
        hotkeys: Any = None,  # platform HotkeyBackend
        focus: Any = None,  # platform FocusTracker
        sounds: Any = None,  # ui.sounds.Sounds
        spool: RecordingSpool | None = None,
        report_path: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        paste_executor: concurrent.futures.Executor | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.recorder = recorder
        self.engine = engine
        self.history = history
        self.output = output
        self.notifier = notifier
        self.hotkeys = hotkeys
        self.focus = focus
        self.sounds = sounds
        self.spool = spool
        self.report_path = report_path
        self._clock = clock
        self._paste_executor = paste_executor or concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="nanodictate-paste"
        )
        self._active: Dictation | None = None
        self._pending: dict[int, Dictation] = {}
        self._pasting = 0
        self._next_job = 1
        self._engine_state = "unloaded"
        self._error: str | None = None
        self._state = AppState.UNLOADED
        self._registered: set[str] = set()
        self._cancel_registered = False
        self.memory: Any = None
        self.last_load: Any = None

        self._level_timer = QTimer(self)
        self._level_timer.setInterval(LEVEL_INTERVAL_MS)
        self._level_timer.timeout.connect(self._poll_level)

        queued = Qt.ConnectionType.QueuedConnection
        self._hotkey.connect(self._on_hotkey, queued)
        self._recorder_stopped.connect(self._on_recorder_stopped, queued)
        self._paste_done.connect(self._on_paste_done, queued)
        worker = engine.worker
        worker.state_changed.connect(self._on_engine_state)
        worker.loaded.connect(self._on_loaded)
        worker.load_failed.connect(self._on_load_failed)
        worker.transcribed.connect(self._on_transcribed)
        worker.transcribe_failed.connect(self._on_transcribe_failed)
        worker.engine_restarting.connect(self._on_engine_restarting)
        worker.memory_changed.connect(self._on_memory)
        recorder.on_stop = lambda reason: self._recorder_stopped.emit(str(reason))
        settings.add_listener(self._on_setting)
        self.apply_idle_policy()

    # ================================================================== inputs

    def hotkey_event(self, hotkey_id: str, pressed: bool) -> None:
        """The HotkeyBackend callback: any thread; stamps the time and queues the event."""
        self._hotkey.emit(hotkey_id, int(pressed), self._clock())

    def command(self, name: str) -> bool:
        """toggle / start / stop / cancel (CLI, single-instance handoff, compositor bindings)."""
        now = self._clock()
        if name == "toggle":
            if self._active is None:
                self._begin("command", hold=False, language=None, now=now)
            else:
                self._finish(now)
        elif name == "start":
            if self._active is None:
                self._begin("command", hold=False, language=None, now=now)
        elif name == "stop":
            if self._active is not None:
                self._finish(now)
        elif name == "cancel":
            self.cancel()
        else:
            return False
        return True

    @Slot(str, int, float)
    def _on_hotkey(self, hotkey_id: str, pressed: int, when: float) -> None:
        if hotkey_id in (CANCEL_ID, CANCEL_HELD_ID):
            if pressed:
                self.cancel()
            return
        language: str | None = None
        if hotkey_id == TOGGLE_ID:
            hold = False
        elif hotkey_id == DICTATE_ID or hotkey_id.startswith(LANGUAGE_PREFIX):
            hold = self.settings.get(S.HOTKEY_MODE) == "push_to_talk"
            if hotkey_id.startswith(LANGUAGE_PREFIX):
                language = hotkey_id[len(LANGUAGE_PREFIX) :]
        else:
            log.debug("Unknown hotkey id %s", hotkey_id)
            return
        active = self._active
        if pressed:
            if active is None:
                self._begin(hotkey_id, hold=hold, language=language, now=when)
            elif not active.hold:
                self._finish(when)  # the second press of a toggle
            # else: a key repeat, or another key while holding: ignored
        elif active is not None and active.hold and active.trigger == hotkey_id:
            self._finish(when)

    # ================================================================== recording

    def _begin(self, trigger: str, *, hold: bool, language: str | None, now: float) -> None:
        language = language or self.settings.get(S.LANGUAGE)
        target = None
        if self.focus is not None:
            try:
                target = self.focus.focused_window()
            except Exception:
                log.warning("Cannot read the focused window", exc_info=True)
        try:
            self.recorder.start()
        except MicrophoneError as error:
            self._set_error(str(error))
            self.notifier.show("No microphone", str(error), level="error")
            return
        self._error = None
        job_id, self._next_job = self._next_job, self._next_job + 1
        self._active = Dictation(job_id, trigger, hold, language, now, target)
        self._register_cancel(True, trigger)
        if self._engine_state == "unloaded":
            # In parallel with the recording: by key-up much of the load is done.
            self._submit(LoadRequest(*self._placement()))
        if self.sounds is not None and self.settings.get(S.SOUNDS):
            self.sounds.play("start")
        self._level_timer.start()
        self._update_state()

    def _finish(self, now: float, reason: StopReason = StopReason.STOPPED) -> None:
        dictation, self._active = self._active, None
        if dictation is None:
            return
        self._level_timer.stop()
        self._register_cancel(False)
        dictation.first_frame_at = getattr(self.recorder, "first_frame_at", None)
        held = now - dictation.key_down
        if dictation.hold and reason is StopReason.STOPPED and held < MIN_HOLD_S:
            self.recorder.cancel()
            log.info("Hotkey tapped for %.0f ms: ignored", (now - dictation.key_down) * 1000)
            self._report(dictation, event="ignored_tap")
            self._release_preload()
            self._update_state()
            return
        dictation.key_up = now
        recording: Recording = self.recorder.stop()
        dictation.recording = recording
        if self.sounds is not None and self.settings.get(S.SOUNDS):
            self.sounds.play("stop")
        if recording.seconds <= 0:
            self._report(dictation, event="empty")
            self._release_preload()
            self._update_state()
            return
        dictation.spooled = self._keep_on_disk(recording.samples, dictation.language)
        self._transcribe(dictation, recording.samples)
        self._update_state()

    def _transcribe(self, dictation: Dictation, samples: Any) -> None:
        hotwords: list[str] = self.settings.get(S.HOTWORDS)
        request = TranscribeRequest(
            job_id=dictation.job_id,
            audio=samples,
            sample_rate=16000,
            language=dictation.language,
            precision=self.settings.get(S.PRECISION),
            device=self.settings.get(S.DEVICE),
            hotwords=tuple(hotwords),
            itn=self.settings.get(S.ITN),
        )
        if self._submit(request):
            self._pending[dictation.job_id] = dictation

    def _keep_on_disk(self, samples: Any, language: str) -> SpooledRecording | None:
        if self.spool is None:
            return None
        try:
            return self.spool.keep(samples, language=language)
        except OSError as error:
            # The transcription goes on from memory; only a crash of the app itself would
            # now lose the recording.
            log.warning("Cannot keep the recording on disk: %s", error)
            return None

    def _text_is_safe(self, dictation: Dictation) -> None:
        if self.spool is not None and dictation.spooled is not None:
            self.spool.release(dictation.spooled)
            dictation.spooled = None

    # ================================================================== recovery

    def offer_recovery(self) -> int:
        """At start: offer to transcribe recordings an earlier run left unfinished."""
        if self.spool is None:
            return 0
        left = self.spool.orphans()
        if left:
            count = f"{len(left)} recordings" if len(left) > 1 else "A recording"
            self.notifier.show(
                "Unfinished dictation",
                f"{count} from an earlier session could not be transcribed. Click here to "
                "transcribe now; the text goes to Recent (tray menu) and the clipboard.",
                level="warning",
                action=self.recover_recordings,
            )
        return len(left)

    def recover_recordings(self) -> None:
        """Transcribe every recording on disk not already on its way; text to history only."""
        if self.spool is None:
            return
        busy = {d.spooled.audio_path for d in self._pending.values() if d.spooled is not None}
        for entry in self.spool.orphans():
            if entry.audio_path in busy:
                continue
            job_id, self._next_job = self._next_job, self._next_job + 1
            dictation = Dictation(
                job_id, RECOVERED_TRIGGER, False, entry.language, self._clock(), None
            )
            dictation.spooled = entry
            self._transcribe(dictation, self.spool.read(entry))
        self._update_state()

    def cancel(self) -> None:
        dictation, self._active = self._active, None
        if dictation is None:
            return
        self._level_timer.stop()
        self.recorder.cancel()
        self._register_cancel(False)
        log.info("Dictation cancelled")
        self._report(dictation, event="cancelled")
        self._release_preload()
        self._update_state()

    def _release_preload(self) -> None:
        """A dictation ended without a transcription. With "unload immediately" the worker
        keeps the model loaded at key-down for the transcription; none comes, so unload now."""
        if self.settings.get(S.UNLOAD_AFTER_MINUTES) == 0:
            self.unload_model("dictation ended without a transcription")

    @Slot(str)
    def _on_recorder_stopped(self, reason: str) -> None:
        if self._active is None:
            return
        stop = StopReason(reason)
        if stop is StopReason.MAX_LENGTH:
            minutes = self.recorder.max_seconds / 60
            self.notifier.show(
                "Recording stopped",
                f"The recording reached its maximum length ({minutes:g} min); transcribing it.",
            )
        elif stop is StopReason.DEVICE_LOST:
            self.notifier.show(
                "Microphone lost",
                "The microphone stopped delivering sound; transcribing what was captured.",
                level="warning",
            )
        self._finish(self._clock(), stop)

    def _poll_level(self) -> None:
        if self._active is None:
            return
        self.level_changed.emit(float(self.recorder.level))
        silent_for = self.recorder.seconds_since_last_frame()
        if (
            silent_for is not None
            and silent_for > STALL_S
            and self._clock() - self._active.key_down > STALL_S
        ):
            log.warning("No audio for %.1f s: treating the microphone as lost", silent_for)
            self.recorder.mark_device_lost()

    # ================================================================== engine

    def _placement(self) -> tuple[str, str]:
        return self.settings.get(S.PRECISION), self.settings.get(S.DEVICE)

    def _submit(self, request: Any) -> bool:
        try:
            self.engine.submit(request)
            return True
        except QueueFull as error:
            self.notifier.show("Busy", str(error), level="warning")
            return False

    def load_model(self) -> None:
        self._submit(LoadRequest(*self._placement()))

    def unload_model(self, reason: str = "asked") -> None:
        self._submit(UnloadRequest(reason))

    def apply_idle_policy(self) -> None:
        self._submit(
            IdlePolicy(
                self.settings.get(S.UNLOAD_AFTER_MINUTES), self.settings.get(S.TWO_TIER_IDLE)
            )
        )

    @Slot(str)
    def _on_engine_state(self, state: str) -> None:
        self._engine_state = state
        self.engine_state_changed.emit(state)
        self._update_state()

    @Slot(object)
    def _on_memory(self, report: Any) -> None:
        self.memory = report
        self.memory_changed.emit(report)

    @Slot(object)
    def _on_loaded(self, report: Any) -> None:
        self.last_load = report
        self._error = None
        reason = getattr(report, "fallback_reason", None)
        if reason:
            precision = str(getattr(report.precision, "value", report.precision)).upper()
            device = "GPU" if report.device == "cuda" else "CPU"
            self.notifier.show(
                "Model loaded with less memory",
                f"Using {precision} on the {device}: {reason}.",
                level="warning",
            )
        self._update_state()

    @Slot(object)
    def _on_load_failed(self, failure: Failure) -> None:
        dictation = None if failure.job_id is None else self._pending.pop(failure.job_id, None)
        if dictation is not None:
            self._report(dictation, event="failed")
            if dictation.spooled is not None:
                failure = Failure(failure.job_id, _with_kept_note(failure.error))
        error = failure.error
        self._set_error(str(error))
        if isinstance(error, ModelMissingError):
            self.model_missing.emit(str(error))
        elif isinstance(error, OutOfMemoryError):
            self.notifier.show("Not enough memory", str(error), level="error")
        elif isinstance(error, NanodictateError):
            self.notifier.show("The speech model could not be loaded", str(error), level="error")
        else:
            self.notifier.show(
                "The speech model could not be loaded",
                "An unexpected error happened; the log has the details.",
                level="error",
            )
        self._update_state()

    @Slot(object)
    def _on_transcribe_failed(self, failure: Failure) -> None:
        dictation = self._pending.pop(failure.job_id or -1, None)
        error = failure.error
        message = (
            str(error)
            if isinstance(error, NanodictateError)
            else "An unexpected error happened; the log has the details."
        )
        if dictation is not None and dictation.spooled is not None:
            message += _KEPT
        self._set_error(message)
        self.notifier.show("Transcription failed", message, level="error")
        if dictation is not None:
            self._report(dictation, event="failed")
        self._update_state()

    @Slot(object)
    def _on_engine_restarting(self, failure: Failure) -> None:
        self.notifier.show(
            "Speech engine restarted",
            f"{failure.error} It was started again and is transcribing your recording again.",
            level="warning",
        )

    @Slot(object)
    def _on_transcribed(self, done: TranscribeDone) -> None:
        dictation = self._pending.pop(done.job_id, None)
        if dictation is None:
            return
        result = done.result
        text = str(result.text).strip()
        if not text:
            self._text_is_safe(dictation)
            self.notifier.show("No speech heard", "Nothing was pasted.")
            self._report(dictation, event="no_speech", transcription=result, done=done)
            self._update_state()
            return
        latency = self._clock() - (dictation.key_up or dictation.key_down)
        # History first: whatever happens to the paste, the text is kept.
        try:
            self.history.add(
                text,
                language=dictation.language,
                audio_seconds=float(result.audio_seconds),
                latency_seconds=latency,
            )
            self.history_changed.emit()
            self._text_is_safe(dictation)
        except Exception as error:
            log.exception("Writing the history failed")
            dictation.history_problem = _reason(error)  # told with the paste's outcome
        # A recovered recording's window is long gone: its text goes to the clipboard only.
        method = (
            PasteMethod.COPY
            if dictation.trigger == RECOVERED_TRIGGER
            else PasteMethod(self.settings.get(S.PASTE_METHOD))
        )
        self._pasting += 1
        self._update_state()

        def deliver() -> None:
            try:
                outcome = self.output.deliver(text, method, dictation.target)
            except Exception:
                log.exception("Text output crashed")
                outcome = OutputResult(
                    False, method, "The text could not be pasted. It is in Recent (tray menu)."
                )
            self._paste_done.emit((dictation, result, done), outcome)

        self._paste_executor.submit(deliver)

    @Slot(object, object)
    def _on_paste_done(self, job: tuple[Dictation, Any, TranscribeDone], outcome: Any) -> None:
        dictation, result, done = job
        self._pasting -= 1
        if outcome.ok:
            self._text_is_safe(dictation)  # in the window, even if the history failed
        if dictation.history_problem is not None:
            where = "was pasted" if outcome.ok else "could not be pasted; it is on the clipboard"
            self.notifier.show(
                "History not saved",
                f"The text {where}, but the history could not be written "
                f"({dictation.history_problem}).",
                level="warning",
            )
        elif not outcome.ok and outcome.message:
            self.notifier.show("Paste failed", outcome.message, level="warning")
        self._report(dictation, event="dictation", transcription=result, done=done, outcome=outcome)
        self._update_state()

    # ================================================================== hotkeys

    def apply_hotkeys(self) -> list[str]:
        """(Re)register the dictation hotkeys; the problems, also shown to the user."""
        if self.hotkeys is None:
            return []
        from nanodictate.platform.base import Hotkey

        for hotkey_id in sorted(self._registered):
            try:
                self.hotkeys.unregister(hotkey_id)
            except Exception:
                log.debug("unregister %s failed", hotkey_id, exc_info=True)
        self._registered.clear()
        problems = []
        for hotkey_id, text in self._hotkey_texts().items():
            if not text.strip():
                continue
            try:
                self.hotkeys.register(hotkey_id, Hotkey.parse(text))
                self._registered.add(hotkey_id)
            except NanodictateError as error:
                problems.append(str(error))
            except ValueError as error:
                problems.append(f"The hotkey {text!r} is not valid: {error}")
        if problems:
            # One notification for all of them: the first is the one that matters most.
            self.notifier.show("Hotkey problem", " ".join(dict.fromkeys(problems)), level="warning")
        return problems

    def _hotkey_texts(self) -> dict[str, str]:
        """Hotkey id → the hotkey's text, for the dictation hotkeys in the settings."""
        wanted = {
            DICTATE_ID: self.settings.get(S.HOTKEY_DICTATE),
            TOGGLE_ID: self.settings.get(S.HOTKEY_TOGGLE),
        }
        favourites: dict[str, str] = self.settings.get(S.FAVOURITE_HOTKEYS)
        for code, text in favourites.items():
            wanted[LANGUAGE_PREFIX + code] = text
        return wanted

    def _register_cancel(self, on: bool, trigger: str = "") -> None:
        """Grab the cancel key while recording only, so Esc keeps working elsewhere.

        While push-to-talk is held its modifiers are down too, and a grab matches exact
        modifiers: Esc pressed during Ctrl+Alt+Space arrives as Ctrl+Alt+Esc. So the cancel
        key is also grabbed with the trigger's modifiers.
        """
        if self.hotkeys is None or on == self._cancel_registered:
            return
        if getattr(self.hotkeys, "name", "") == "portal":
            # The desktop portal rebinds the whole set (and may ask the user) on every change:
            # no per-recording cancel key there; `nanodictate cancel` still works.
            return
        ids = (CANCEL_ID, CANCEL_HELD_ID)
        if not on:
            self._cancel_registered = False
            for hotkey_id in ids:
                try:
                    self.hotkeys.unregister(hotkey_id)
                except Exception:
                    log.debug("unregister %s failed", hotkey_id, exc_info=True)
            return
        text = self.settings.get(S.HOTKEY_CANCEL).strip()
        if not text:
            return
        from nanodictate.platform.base import Hotkey

        try:
            cancel = Hotkey.parse(text)
            self.hotkeys.register(CANCEL_ID, cancel)
            self._cancel_registered = True
        except (NanodictateError, ValueError) as error:
            # Not worth a notification on every dictation: the CLI `cancel` still works.
            log.warning("Cancel hotkey not available: %s", error)
            return
        trigger_text = self._hotkey_texts().get(trigger, "")
        try:
            modifiers = Hotkey.parse(trigger_text).modifiers if trigger_text.strip() else None
        except ValueError:
            modifiers = None
        if modifiers and not modifiers <= cancel.modifiers:
            held = Hotkey(cancel.key, cancel.modifiers | modifiers)
            try:
                self.hotkeys.register(CANCEL_HELD_ID, held)
            except (NanodictateError, ValueError) as error:
                log.info("Cancel with the hotkey held (%s) not available: %s", held, error)

    # ================================================================== settings

    def _on_setting(self, setting: S.Setting[Any], value: Any) -> None:
        if setting in (S.PRECISION, S.DEVICE):
            if self._engine_state != "unloaded":
                self.unload_model(f"{setting.name} changed")
        elif setting in (S.UNLOAD_AFTER_MINUTES, S.TWO_TIER_IDLE):
            self.apply_idle_policy()
        elif setting in (S.HOTKEY_DICTATE, S.HOTKEY_TOGGLE, S.FAVOURITE_HOTKEYS):
            self.apply_hotkeys()
        elif setting is S.MICROPHONE:
            self._use_microphone(value)
        elif setting is S.KEEP_MICROPHONE_OPEN:
            self.recorder.keep_open = bool(value)
            if self._active is None:
                if value:
                    self._open_microphone()
                else:
                    self.recorder.close()
        elif setting is S.MAX_RECORDING_SECONDS:
            self.recorder.max_seconds = float(value)
        elif setting is S.HISTORY_MAX_ENTRIES:
            self.history.set_max_entries(int(value))

    def _use_microphone(self, name: str) -> None:
        try:
            self.recorder.set_device(name or None)
        except MicrophoneError as error:
            self.notifier.show("Microphone problem", str(error), level="error")

    def _open_microphone(self) -> None:
        try:
            self.recorder.open()
        except MicrophoneError as error:
            self.notifier.show("No microphone", str(error), level="error")

    def start_microphone(self) -> None:
        """At app start: open the always-on stream when that is the setting."""
        if self.recorder.keep_open:
            self._open_microphone()

    # ================================================================== state

    @property
    def state(self) -> AppState:
        return self._state

    @property
    def engine_state(self) -> str:
        return self._engine_state

    @property
    def recording(self) -> bool:
        return self._active is not None

    def _set_error(self, message: str) -> None:
        self._error = message

    @property
    def error(self) -> str | None:
        return self._error

    def _compute_state(self) -> AppState:
        if self._active is not None:
            return AppState.RECORDING
        if self._pending:
            return AppState.LOADING if self._engine_state == "loading" else AppState.TRANSCRIBING
        if self._pasting:
            return AppState.TRANSCRIBING
        if self._engine_state == "loading":
            return AppState.LOADING
        if self._error is not None:
            return AppState.ERROR
        if self._engine_state in ("ready", "offloaded"):
            return AppState.READY
        return AppState.UNLOADED

    def _update_state(self) -> None:
        state = self._compute_state()
        if state != self._state:
            self._state = state
            self.state_changed.emit(state.value)

    # ================================================================== test hook

    def _report(
        self,
        dictation: Dictation,
        *,
        event: str,
        transcription: Any = None,
        done: TranscribeDone | None = None,
        outcome: Any = None,
    ) -> None:
        """One JSON line per dictation for the end-to-end test ($NANODICTATE_TEST_REPORT).

        Timings and sizes only: the text itself is not written (it is in the history).
        """
        now = self._clock()
        record: dict[str, Any] = {
            "event": event,
            "job": dictation.job_id,
            "trigger": dictation.trigger,
            "language": dictation.language,
            "time": time.time(),
        }
        if dictation.first_frame_at is not None:
            record["key_down_to_first_frame_ms"] = round(
                (dictation.first_frame_at - dictation.key_down) * 1000, 1
            )
        if dictation.recording is not None:
            record["audio_seconds"] = round(dictation.recording.seconds, 3)
            record["preroll_seconds"] = round(dictation.recording.preroll_seconds, 3)
            record["stop_reason"] = str(dictation.recording.reason)
        if transcription is not None:
            record["chars"] = len(str(transcription.text))
        if done is not None:
            record["transcribe_ms"] = round(done.seconds * 1000, 1)
            if done.load_report is not None:
                record["load_seconds"] = round(float(done.load_report.seconds), 3)
            # The model that transcribed: loaded by this job, or before it (at key-down).
            load = done.load_report if done.load_report is not None else self.last_load
            if load is not None:
                record["precision"] = str(getattr(load.precision, "value", load.precision))
                record["device"] = str(load.device)
        if outcome is not None:
            record["ok"] = bool(outcome.ok)
            record["method"] = str(outcome.method)
            if dictation.key_up is not None:
                landed = getattr(outcome, "landed_at", None)
                if landed is not None:
                    record["key_up_to_pasted_ms"] = round((landed - dictation.key_up) * 1000, 1)
                record["key_up_to_done_ms"] = round((now - dictation.key_up) * 1000, 1)
        self.dictation_finished.emit(record)
        if self.report_path is None:
            return
        try:
            with self.report_path.open("a", encoding="utf-8") as stream:
                stream.write(json.dumps(record) + "\n")
        except OSError:
            log.warning("Cannot write the test report %s", self.report_path, exc_info=True)

    # ================================================================== shutdown

    def shutdown(self) -> None:
        self._level_timer.stop()
        if self._active is not None:
            self.cancel()
        # A paste in progress (a logout right after a dictation) needs the GUI thread for
        # the clipboard until it has restored the user's content: keep serving it a while.
        deadline = time.monotonic() + SHUTDOWN_PASTE_WAIT_S
        while self._pasting and time.monotonic() < deadline:
            QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        self._paste_executor.shutdown(wait=True, cancel_futures=False)
        self.settings.remove_listener(self._on_setting)


_KEPT = " Your recording is kept and will be offered again when nanodictate starts."


def _with_kept_note(error: BaseException) -> BaseException:
    """The same kind of error, its message telling the user the recording is safe."""
    if isinstance(error, NanodictateError):
        return type(error)(str(error) + _KEPT)
    return error


def _reason(error: BaseException) -> str:
    """A short cause for the user: "database or disk is full", "Permission denied"."""
    return str(getattr(error, "strerror", None) or error or type(error).__name__)
