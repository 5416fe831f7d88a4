"""The dictation's side of transcribing while the user speaks (`core.live_segments`).

While a dictation records, every `LIVE_INTERVAL_MS` the audio since the last settled chunk
goes to the engine worker as a `LivePass` (a pass still waiting there is replaced, never
queued behind). The worker answers with `LiveUpdate`s: chunks settled (their text is final)
and, where live text is on, a guess at the part still being spoken. Here they become the
live preview (`ui.live_preview`) and, with "paste at each pause", a paste per settled chunk.
The same window, with the recording indicator on, shows "● Recording" and the input level
from key-down to key-up, whether live text is on or not. The level is the microphone link's
`level_changed`, the one poll of the recorder that also drives the tray icon: its bar is
connected to that signal only while the indicator shows.
At key-up the worker itself joins the settled chunks with the tail, so nothing here is
needed for the final text; what was pasted already is left out of the final paste. Each paste
after the first starts with the separator `join_texts` puts between chunks (a space, none
between CJK characters), so the window ends up holding exactly the whole text.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QTimer, SignalInstance, Slot

from nanodictate import settings as S
from nanodictate.core.asr.chunks import join_texts
from nanodictate.core.dictation import Dictation
from nanodictate.core.live_segments import LivePass, LiveUpdate
from nanodictate.core.profiles import profile_hotwords
from nanodictate.core.recorder import Recorder
from nanodictate.core.transcriber import Transcription
from nanodictate.ui.delivery import TextDelivery
from nanodictate.ui.live_preview import LivePreview
from nanodictate.ui.worker import EngineWorker

log = logging.getLogger(__name__)

# The issue asks for the open part re-decoded every ≈0.5–0.7 s; a pass that is still running
# when the next is due makes the real interval longer by itself.
LIVE_INTERVAL_MS = 500
RATE = 16000


@dataclass
class Pasted:
    """What one dictation pasted at its pauses so far."""

    chunks: int = 0  # settled chunks, counted from the recording's first
    last_text: str = ""  # the last non-empty piece: the next paste follows it


@dataclass(frozen=True)
class PieceDone:
    """A chunk pasted at a pause; the delivery reads `result` as it reads a TranscribeDone."""

    job_id: int
    result: Transcription


class LiveLink(QObject):
    def __init__(
        self,
        worker: EngineWorker,
        recorder: Recorder,
        settings: S.Settings,
        delivery: TextDelivery,
        level_changed: SignalInstance,
        preview_factory: Callable[[], LivePreview] = LivePreview,
    ) -> None:
        super().__init__()
        self.worker, self.recorder = worker, recorder
        self.settings, self.delivery = settings, delivery
        self._preview_factory = preview_factory
        self.preview: LivePreview | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(LIVE_INTERVAL_MS)
        self._timer.timeout.connect(self._tick)
        self._level_changed = level_changed  # RMS while recording (`MicrophoneLink`)
        self._level_shown = False  # the preview's bar is connected to it
        self._dictation: Dictation | None = None  # recording, or waiting for its final text
        self._recording = False
        self._text_shown = False  # this dictation's live text is in the preview
        self._settled_samples = 0
        self.locked: list[str] = []  # texts of the chunks settled so far (the GUI has them)
        self.pasted: dict[int, Pasted] = {}  # job id → what was pasted at its pauses
        worker.live_updated.connect(self._on_update)

    def begin(self, dictation: Dictation) -> None:
        self._dictation, self._recording = dictation, True
        self._settled_samples = 0
        self._text_shown = False
        self.locked = []
        self._timer.start()
        if self.settings.get(S.RECORDING_OVERLAY):
            self._preview().show_recording()
            self._show_level()

    def end(self, dictation: Dictation, *, cancelled: bool = False) -> None:
        """The recording stopped: no more passes; a cancelled one forgets what it had."""
        if self._dictation is not dictation:
            return
        self._timer.stop()
        self._hide_level()
        self._recording = False
        self.worker.finish_live(dictation.job_id)
        if self.preview is not None:
            self.preview.clear()
        if cancelled:
            self._dictation = None
            self.pasted.pop(dictation.job_id, None)

    def text_to_paste(self, dictation: Dictation, result: Transcription) -> str:
        """The final text, less the chunks already pasted at pauses; the dictation's
        `paste_lead` is set to follow them."""
        if self._dictation is dictation:
            self._dictation = None
        pasted = self.pasted.pop(dictation.job_id, None)
        if pasted is None or not pasted.chunks:
            return result.text.strip()
        text = join_texts([segment.text for segment in result.segments[pasted.chunks :]])
        dictation.paste_lead = separator(pasted.last_text, text)
        return text

    @Slot()
    def _tick(self) -> None:
        dictation = self._dictation
        if dictation is None or not self._recording:
            return
        audio = self.recorder.samples_since(self._settled_samples)
        if not len(audio):
            return
        hotwords: list[str] = self.settings.get(S.HOTWORDS)
        self.worker.submit_live(
            LivePass(
                dictation.job_id,
                audio,
                self._settled_samples,
                dictation.language,
                profile_hotwords(dictation.profile, hotwords),
                self.settings.get(S.ITN),
                self.settings.get(S.LIVE_TEXT),
            )
        )

    @Slot(object)
    def _on_update(self, update: LiveUpdate) -> None:
        dictation = self._dictation
        if dictation is None or update.job_id != dictation.job_id or not self._recording:
            return
        if update.new_segments:
            self._settled_samples = round(update.new_segments[-1].end * RATE)
            self.locked.extend(segment.text for segment in update.new_segments)
            if self.settings.get(S.PASTE_AT_EACH_PAUSE):
                self._paste_piece(dictation, update)
        # Once the guess has shown, the preview follows this dictation's text to key-up
        # (a pass may have nothing open); without live text, the indicator shows no text.
        self._text_shown = self._text_shown or update.open_text is not None
        if self._text_shown:
            self._preview().show_text(self.locked, update.open_text)

    def _preview(self) -> LivePreview:
        if self.preview is None:
            self.preview = self._preview_factory()
        return self.preview

    def _show_level(self) -> None:
        """The indicator's bar follows the microphone's level (connected once)."""
        if not self._level_shown:
            self._level_changed.connect(self._preview().show_level)
            self._level_shown = True

    def _hide_level(self) -> None:
        if self._level_shown and self.preview is not None:
            self._level_changed.disconnect(self.preview.show_level)
        self._level_shown = False

    def _paste_piece(self, dictation: Dictation, update: LiveUpdate) -> None:
        text = join_texts([segment.text for segment in update.new_segments])
        pasted = self.pasted.setdefault(dictation.job_id, Pasted())
        pasted.chunks += len(update.new_segments)
        if not text:
            return
        lead = separator(pasted.last_text, text)
        pasted.last_text = text
        seconds = update.new_segments[-1].end - update.new_segments[0].start
        piece = Transcription(text, dictation.language, seconds, update.new_segments)
        # A copy without the spooled recording: a piece pasted must not release it.
        alone = dataclasses.replace(dictation, spooled=None, paste_lead=lead)
        self.delivery.deliver(alone, PieceDone(dictation.job_id, piece), text)

    def shutdown(self) -> None:
        self._timer.stop()
        self._hide_level()
        if self.preview is not None:
            self.preview.close()
            self.preview = None


def separator(before: str, text: str) -> str:
    """What `join_texts` puts between `before` and `text` (nothing when either is empty)."""
    if not before.strip() or not text.strip():
        return ""
    joined = join_texts([before, text])
    return joined[len(before.strip()) : len(joined) - len(text.strip())]


def is_piece(done: Any) -> bool:
    """A paste made at a pause (not the dictation's final text)."""
    return isinstance(done, PieceDone)
