"""What a dictation is and the rules that start, stop and drop one — no Qt, no threads.

A dictation begins at a hotkey press (or a command), records until release (push-to-talk) or
the next press (toggle), and then waits, as a pending job, for its text. `DictationBook` keeps
the one being recorded and those pending; `decide` turns a hotkey event into what to do;
`app_state` says what the tray icon shows. The Qt controller (`ui.controller`) performs what
these decide: it records, asks the engine, pastes, and tells the user.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from typing import Any

from nanodictate.core.ports import WindowInfo
from nanodictate.core.profiles import Profile
from nanodictate.core.recorder import Recording, StopReason
from nanodictate.core.spool import SpooledRecording
from nanodictate.core.transcriber import EngineState

MIN_HOLD_S = 0.3  # a push-to-talk press shorter than this is a slip, not a dictation

# Hotkey ids: the dictation keys registered from the settings, and the cancel key grabbed
# while recording only (also with the dictation key's modifiers held: CANCEL_HELD_ID).
DICTATE_ID = "dictate"
TOGGLE_ID = "toggle"
CANCEL_ID = "cancel"
CANCEL_HELD_ID = "cancel:held"
LANGUAGE_PREFIX = "lang:"  # + a language code: dictate in that language
COMMAND_TRIGGER = "command"  # started by `nanodictate start|toggle`, not by a key
RECOVERED_TRIGGER = "recovered"  # a recording an earlier run left unfinished


class AppState(enum.StrEnum):
    """What the tray icon shows."""

    UNLOADED = "unloaded"
    LOADING = "loading"
    READY = "ready"
    RECORDING = "recording"
    TRANSCRIBING = "transcribing"
    ERROR = "error"


@dataclass
class Dictation:
    job_id: int
    trigger: str  # hotkey id, COMMAND_TRIGGER or RECOVERED_TRIGGER
    hold: bool  # push-to-talk (stops on release) rather than toggle
    language: str
    key_down: float  # monotonic time of the key event
    target: WindowInfo | None  # the window that had focus at key-down (None if unknown or gone)
    key_up: float | None = None
    recording: Recording | None = None
    first_frame_at: float | None = None
    # On disk from key-up until the text is in the history (None if the disk refused it).
    spooled: SpooledRecording | None = None
    history_problem: str | None = None  # why the text could not be written to the history
    # Goes before the text in the window, not in the history: the space after a piece pasted
    # at a pause ("paste at each pause"), so the pieces read as the whole text would.
    paste_lead: str = ""
    profile: Profile | None = None  # the per-app profile of the window at key-down

    @property
    def recovered(self) -> bool:
        return self.trigger == RECOVERED_TRIGGER


class Action(enum.Enum):
    BEGIN = "begin"
    FINISH = "finish"
    CANCEL = "cancel"
    IGNORE = "ignore"


@dataclass(frozen=True)
class Decision:
    action: Action
    hold: bool = False  # for BEGIN: push-to-talk
    language: str | None = None  # for BEGIN: a language hotkey's language


def decide(
    hotkey_id: str, pressed: bool, active: Dictation | None, *, push_to_talk: bool
) -> Decision:
    """What a hotkey event means, given the dictation being recorded (if any)."""
    if hotkey_id in (CANCEL_ID, CANCEL_HELD_ID):
        return Decision(Action.CANCEL if pressed else Action.IGNORE)
    language: str | None = None
    if hotkey_id == TOGGLE_ID:
        hold = False
    elif hotkey_id == DICTATE_ID or hotkey_id.startswith(LANGUAGE_PREFIX):
        hold = push_to_talk
        if hotkey_id.startswith(LANGUAGE_PREFIX):
            language = hotkey_id[len(LANGUAGE_PREFIX) :]
    else:
        return Decision(Action.IGNORE)
    if pressed:
        if active is None:
            return Decision(Action.BEGIN, hold, language)
        # The second press of a toggle; else a key repeat or another key while holding.
        return Decision(Action.FINISH if not active.hold else Action.IGNORE)
    if active is not None and active.hold and active.trigger == hotkey_id:
        return Decision(Action.FINISH)
    return Decision(Action.IGNORE)


def decide_command(name: str, active: Dictation | None) -> Decision | None:
    """toggle / start / stop / cancel from the command line; None for an unknown name."""
    if name == "toggle":
        return Decision(Action.BEGIN if active is None else Action.FINISH)
    if name == "start":
        return Decision(Action.BEGIN if active is None else Action.IGNORE)
    if name == "stop":
        return Decision(Action.FINISH if active is not None else Action.IGNORE)
    if name == "cancel":
        return Decision(Action.CANCEL)
    return None


def is_slip(dictation: Dictation, now: float, reason: StopReason) -> bool:
    """A push-to-talk tap too short to be meant: it does nothing."""
    return dictation.hold and reason is StopReason.STOPPED and now - dictation.key_down < MIN_HOLD_S


class DictationBook:
    """The dictation being recorded, the ones waiting for their text (by job id), and the ones
    the engine could not take yet."""

    def __init__(self) -> None:
        self.active: Dictation | None = None
        self.pending: dict[int, Dictation] = {}
        self.deferred: list[tuple[Dictation, Any]] = []
        self._next_job = 1

    def begin(
        self, trigger: str, *, hold: bool, language: str, now: float, target: WindowInfo | None
    ) -> Dictation:
        self.active = self.new(trigger, hold=hold, language=language, now=now, target=target)
        return self.active

    def new(
        self, trigger: str, *, hold: bool, language: str, now: float, target: WindowInfo | None
    ) -> Dictation:
        job_id, self._next_job = self._next_job, self._next_job + 1
        return Dictation(job_id, trigger, hold, language, now, target)

    def recovered(self, spooled: SpooledRecording, now: float) -> Dictation:
        """A dictation for a recording an earlier run kept on disk; no window awaits it."""
        dictation = self.new(
            RECOVERED_TRIGGER, hold=False, language=spooled.language, now=now, target=None
        )
        dictation.spooled = spooled
        return dictation

    def take_active(self) -> Dictation | None:
        dictation, self.active = self.active, None
        return dictation

    def wait_for_text(self, dictation: Dictation) -> None:
        self.pending[dictation.job_id] = dictation

    def defer(self, dictation: Dictation, samples: Any) -> None:
        """The engine's queue was full: keep the recording to send again when it drains."""
        self.deferred.append((dictation, samples))

    def take_deferred(self) -> list[tuple[Dictation, Any]]:
        deferred, self.deferred = self.deferred, []
        return deferred

    def done(self, job_id: int | None) -> Dictation | None:
        return None if job_id is None else self.pending.pop(job_id, None)

    def spooled_paths(self) -> set[Any]:
        waiting = [*self.pending.values(), *(dictation for dictation, _ in self.deferred)]
        return {d.spooled.audio_path for d in waiting if d.spooled is not None}


def app_state(
    book: DictationBook, *, engine: EngineState, pasting: int, error: str | None
) -> AppState:
    if book.active is not None:
        return AppState.RECORDING
    if book.pending or book.deferred:
        return AppState.LOADING if engine is EngineState.LOADING else AppState.TRANSCRIBING
    if pasting:
        return AppState.TRANSCRIBING
    if engine is EngineState.LOADING:
        return AppState.LOADING
    if error is not None:
        return AppState.ERROR
    if engine in (EngineState.READY, EngineState.OFFLOADED):
        return AppState.READY
    return AppState.UNLOADED


def dictation_record(
    dictation: Dictation,
    event: str,
    now: float,
    done: Any = None,  # ui.worker.TranscribeDone, when the engine answered
    outcome: Any = None,  # text_output.OutputResult, when the text was delivered
    last_load: Any = None,  # the LoadReport of the model loaded before this job
) -> dict[str, Any]:
    """One dictation in numbers, for the end-to-end tests' report. Never the text itself."""
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
    if done is not None:
        record["chars"] = len(done.result.text)
        record["transcribe_ms"] = round(done.seconds * 1000, 1)
        record["segments"] = len(done.result.segments)
        # Chunks transcribed while the user spoke (`core.live_segments`); 0 when none were.
        record["settled_while_speaking"] = int(done.result.timings.get("settled_while_speaking", 0))
        # The model that transcribed: loaded by this job, or before it (at key-down).
        load = done.load_report or last_load
        if done.load_report is not None:
            record["load_seconds"] = round(float(load.seconds), 3)
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
    return record
