"""From a transcription to text in the window: the text steps, the history, then the paste.

The text steps (`core.text_steps`: fillers, replacements, spoken punctuation, voice commands,
auto-submit) turn the transcription into the text that goes out; a step that fails leaves the
text as transcribed. The per-app profile matching the dictation's window (`core.profiles`)
changes the steps and the paste method for it. The window is the one that had focus at
key-down (`target_window`, when the platform can tell). The history is written before anything
is pasted, so no paste failure can lose the text; the recording kept on disk goes once the
text is in the history or in the window. When the user keeps audio, the recording stays with
its history entry (`core.history_audio`) to be re-transcribed later. The paste — with "delete
that" before it and Enter after it when the steps ask — runs on a background lane, in order,
and its outcome comes back as `delivered`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from PySide6.QtCore import QObject, Signal

from nanodictate import settings as S
from nanodictate.core import messages
from nanodictate.core.dictation import Dictation
from nanodictate.core.ports import FocusTracker, WindowInfo
from nanodictate.core.profiles import (
    Profile,
    ProfileBook,
    finish_text,
    profile_paste_method,
    profile_steps,
)
from nanodictate.core.spool import RecordingSpool, SpooledRecording
from nanodictate.core.text_output import OutputResult, PasteMethod
from nanodictate.core.text_steps import StepsOutcome, TextStepsConfig, apply_text_steps
from nanodictate.ui.background import BackgroundLane

log = logging.getLogger(__name__)

SHUTDOWN_PASTE_WAIT_S = 5.0

Note = tuple[str, str]  # (title, message) told after the paste


def text_steps_config(settings: S.Settings) -> TextStepsConfig:
    """The text steps as the settings choose them (the one place that reads them)."""
    rules: list[str] = settings.get(S.REPLACEMENTS)
    return TextStepsConfig(
        voice_commands=settings.get(S.VOICE_COMMANDS),
        spoken_punctuation=settings.get(S.SPOKEN_PUNCTUATION),
        remove_fillers=settings.get(S.REMOVE_FILLERS),
        replacements=tuple(rules),
        auto_submit=settings.get(S.AUTO_SUBMIT),
    )


class TextDelivery(QObject):
    delivered = Signal(object, object, object)  # Dictation, TranscribeDone, OutputResult
    history_changed = Signal()
    profile_changed = Signal(str)  # the profile of the dictation starting now ("" for none)

    def __init__(
        self,
        *,
        settings: S.Settings,
        history: Any,  # core.history.History
        output: Any,  # core.text_output.TextOutput
        notifier: Any,
        spool: RecordingSpool | None,
        clock: Callable[[], float],
        focus: FocusTracker | None = None,
        steps_config: Callable[[], TextStepsConfig] | None = None,
        profiles: ProfileBook | None = None,
    ) -> None:
        super().__init__()
        self.settings, self.history, self.output = settings, history, output
        self.notifier, self.spool, self._clock = notifier, spool, clock
        self.focus = focus
        self._steps_config = steps_config or (lambda: text_steps_config(settings))
        self.profiles = profiles or ProfileBook(S.profiles_file())
        self._told_problems: tuple[str, ...] = ()  # rule problems told once, until they change
        self._told_profile_problems: tuple[str, ...] = ()
        self._lane = BackgroundLane("paste")
        self._apply_audio_cap()
        settings.add_listener(self._on_setting)

    def _on_setting(self, setting: S.Setting[Any], value: Any) -> None:
        if setting is S.KEEP_AUDIO_MB:
            self._apply_audio_cap()
        elif setting is S.KEEP_AUDIO and not value:
            self.history.audio.clear()  # turned off: what was kept goes too

    def _apply_audio_cap(self) -> None:
        self.history.audio.set_cap_bytes(self.settings.get(S.KEEP_AUDIO_MB) * 1024 * 1024)

    def target_window(self) -> WindowInfo | None:
        """The window focused now, where a dictation starting now will paste (None: unknown).
        Its profile is told through `profile_changed` (the tray's tooltip shows it)."""
        window = self._focused_window()
        profile = self.profile_for(window)
        self.profile_changed.emit("" if profile is None else profile.name)
        return window

    def _focused_window(self) -> WindowInfo | None:
        if self.focus is None:
            return None
        try:
            return self.focus.focused_window()
        except Exception:
            log.warning("Cannot read the focused window", exc_info=True)
            return None

    def profile_for(self, window: WindowInfo | None) -> Profile | None:
        """The per-app profile for a dictation into `window`; the profiles file's mistakes
        are told once, until they change."""
        try:
            found = self.profiles.load()
        except Exception:
            log.exception("Reading the profiles failed; dictating without a profile")
            return None
        if found.problems and found.problems != self._told_profile_problems:
            self.notifier.show(
                "Some per-app profiles were left out", "\n".join(found.problems), level="warning"
            )
        self._told_profile_problems = found.problems
        return self.profiles.match(window)

    @property
    def running(self) -> int:
        return self._lane.running

    def keep(self, samples: Any, language: str) -> Any:
        """The recording on disk until its text is safe (None when the disk refuses it:
        the dictation goes on from memory, and only an app crash could now lose it)."""
        if self.spool is None:
            return None
        try:
            return self.spool.keep(samples, language=language)
        except OSError as error:
            log.warning("Cannot keep the recording on disk: %s", error)
            return None

    def text_is_safe(self, dictation: Dictation) -> None:
        if self.spool is not None and dictation.spooled is not None:
            self.spool.release(dictation.spooled)
            dictation.spooled = None

    def offer_recovery(self, recover: Callable[[], None]) -> int:
        """Offer the recordings an earlier run left on disk; `recover` if the user clicks."""
        left = [] if self.spool is None else self.spool.orphans()
        if left:
            title, message = messages.recovery_offer(len(left))
            self.notifier.show(title, message, level="warning", action=recover)
        return len(left)

    def unfinished(self, busy: set[Any]) -> list[tuple[SpooledRecording, Any]]:
        """The recordings on disk (and their audio) not among `busy` (already on their way)."""
        if self.spool is None:
            return []
        return [
            (entry, self.spool.read(entry))
            for entry in self.spool.orphans()
            if entry.audio_path not in busy
        ]

    def deliver(self, dictation: Dictation, done: Any, text: str) -> None:
        # A recovered recording's window is long gone: its text goes to the clipboard only.
        profile = None if dictation.recovered else self.profile_for(dictation.target)
        steps = self._text_steps(text, dictation.language, profile)
        if steps.text.strip():
            self._keep_in_history(dictation, done, steps.text)
        else:
            self.text_is_safe(dictation)  # a command or fillers only: no text to lose
        if dictation.paste_lead and steps.text[:1].strip():
            # After a piece pasted at a pause: the separator goes to the window only.
            steps = replace(steps, text=dictation.paste_lead + steps.text)
        method = (
            PasteMethod.COPY
            if dictation.recovered
            else profile_paste_method(profile, PasteMethod(self.settings.get(S.PASTE_METHOD)))
        )
        self._lane.run(
            lambda: self._output(steps, method, dictation.target),
            lambda result: self._pasted(dictation, done, *result),
        )

    def _text_steps(self, text: str, language: str, profile: Profile | None) -> StepsOutcome:
        try:
            steps = apply_text_steps(text, language, profile_steps(profile, self._steps_config()))
            steps = replace(steps, text=finish_text(profile, steps.text))
        except Exception:
            log.exception("The text steps failed; the text goes out as transcribed")
            return StepsOutcome(text)
        if steps.problems and steps.problems != self._told_problems:
            self.notifier.show(
                "Some replacement rules were skipped", "\n".join(steps.problems), level="warning"
            )
        self._told_problems = steps.problems
        return steps

    def _keep_in_history(self, dictation: Dictation, done: Any, text: str) -> None:
        try:
            entry_id = self.history.add(
                text,
                language=dictation.language,
                audio_seconds=float(done.result.audio_seconds),
                latency_seconds=self._clock() - (dictation.key_up or dictation.key_down),
            )
            self.text_is_safe(dictation)
        except Exception as error:
            log.exception("Writing the history failed")
            dictation.history_problem = messages.reason(error)  # told with the paste's outcome
            return
        if self.settings.get(S.KEEP_AUDIO) and dictation.recording is not None:
            try:
                self.history.audio.save(entry_id, dictation.recording.samples)
            except OSError as error:  # the text is safe; only a later re-transcription is lost
                log.warning("Cannot keep the audio of the dictation: %s", error)
        self.history_changed.emit()

    def _output(
        self, steps: StepsOutcome, method: PasteMethod, target: Any
    ) -> tuple[OutputResult, list[Note]]:
        """On the paste lane: "delete that", the paste, then Enter, as the steps ask."""
        notes: list[Note] = []
        if steps.erase_previous:
            problem = (
                "In copy-only mode nothing was pasted, so nothing is taken back."
                if method is PasteMethod.COPY
                else self._call(lambda: self.output.erase_last(target), "Backspace failed.")
            )
            if problem is not None:
                notes.append(("Nothing was deleted", problem))
        if not steps.text:
            return OutputResult(True, method), notes
        result = self._paste(steps.text, method, target)
        if result.ok and steps.submit and method is not PasteMethod.COPY:
            problem = self._call(lambda: self.output.press_enter(target), "Enter failed.")
            if problem is not None:
                notes.append(("Enter was not pressed", problem))
        return result, notes

    @staticmethod
    def _call(keys: Callable[[], str | None], crashed: str) -> str | None:
        try:
            return keys()
        except Exception:
            log.exception("Text output crashed")
            return crashed

    def _paste(self, text: str, method: PasteMethod, target: Any) -> OutputResult:
        """On the paste lane."""
        try:
            result: OutputResult = self.output.deliver(text, method, target)
            return result
        except Exception:
            log.exception("Text output crashed")
            return OutputResult(
                False, method, "The text could not be pasted. It is in Recent (tray menu)."
            )

    def _pasted(
        self, dictation: Dictation, done: Any, outcome: OutputResult, notes: list[Note]
    ) -> None:
        if outcome.ok:
            self.text_is_safe(dictation)  # in the window, even if the history failed
        if dictation.history_problem is not None:
            title, message = messages.history_not_saved(
                dictation.history_problem, pasted=outcome.ok
            )
            self.notifier.show(title, message, level="warning")
        elif not outcome.ok and outcome.message:
            self.notifier.show("Paste failed", outcome.message, level="warning")
        for title, message in notes:
            self.notifier.show(title, message, level="warning")
        self.delivered.emit(dictation, done, outcome)

    def shutdown(self) -> None:
        # A paste in progress (a logout right after a dictation) needs the GUI thread for
        # the clipboard until it has restored the user's content: keep serving it a while.
        self._lane.shutdown(SHUTDOWN_PASTE_WAIT_S)
        self.settings.remove_listener(self._on_setting)
