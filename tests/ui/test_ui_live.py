"""Transcription while the user speaks, through the real controller, worker thread, recorder
and history: the settled chunks are decoded during the recording, the final text is the
same, "paste at each pause" pastes each chunk as it settles, and the live preview shows
without taking the focus. The engine is a small stand-in that finds speech where samples
are not zero and says one word per stretch of speech, named after its sample value, so a
text shows which audio it came from wherever the audio was cut."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from controller_rig import WAIT_MS, Rig
from PySide6.QtCore import Qt
from ui_fakes import FakeEngine

from nanodictate import settings as S
from nanodictate.core.asr.chunks import join_texts, plan_chunks
from nanodictate.core.live_segments import LiveStep, SettledChunk, plan_live
from nanodictate.core.transcriber import Capabilities, Segment, Transcription
from nanodictate.ui.icons import level_fraction
from nanodictate.ui.live_link import separator
from nanodictate.ui.live_preview import LEVEL_STEPS

RATE = 16000


def _speech_runs(samples: np.ndarray) -> list[tuple[int, int]]:
    loud = np.concatenate(([0], (samples != 0).astype(np.int8), [0]))
    edges = np.flatnonzero(np.diff(loud))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _words(samples: np.ndarray) -> str:
    return " ".join(f"w{round(float(samples[a]) * 100)}" for a, _ in _speech_runs(samples))


class LiveFakeEngine(FakeEngine):
    capabilities = Capabilities(
        can_offload=False, partial_text=True, remote=False, unload_frees_process=False
    )

    def __init__(self) -> None:
        super().__init__()
        self.settled_passes = 0

    def hear(self, samples: np.ndarray, sample_rate: int, language: str) -> Transcription:
        chunks = plan_chunks(_speech_runs(samples), len(samples))
        segments = [
            Segment(a / sample_rate, b / sample_rate, _words(samples[a:b])) for a, b in chunks
        ]
        text = join_texts([segment.text for segment in segments])
        return Transcription(text, language, len(samples) / sample_rate, tuple(segments))

    def transcribe_settled(
        self,
        audio: Any,
        *,
        language: str = "en",
        hotwords: Sequence[str] = (),
        itn: bool = True,
        guess_open: bool = False,
    ) -> LiveStep:
        samples = np.asarray(audio, dtype=np.float32)
        plan = plan_live(_speech_runs(samples), len(samples))
        settled = tuple(SettledChunk(a, b, _words(samples[a:b])) for a, b in plan.settled)
        self.settled_passes += bool(settled)
        guess = join_texts([_words(samples[a:b]) for a, b in plan.open]) if guess_open else None
        # Reports a real-time factor of 0.5, a CPU too slow for live text on "auto".
        return LiveStep(settled, guess, len(samples) / RATE, 0.5 * len(samples) / RATE)


@pytest.fixture
def engine() -> LiveFakeEngine:
    return LiveFakeEngine()


def _speak(rig: Rig, qtbot: Any, value: float, seconds: float, pause: float) -> None:
    rig.sd.stream.feed_seconds(seconds, value=value, block=800)
    rig.sd.stream.feed_seconds(pause, value=0.0, block=800)
    rig.clock.now += seconds + pause


def _dictate(rig: Rig, qtbot: Any) -> None:
    """Three sentences with 2.5 s pauses; each of the first two settles before the next."""
    rig.hotkeys.fire("dictate", True)
    qtbot.waitUntil(lambda: rig.controller.recording, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: rig.engine.state.value == "ready", timeout=WAIT_MS)
    for count, value in enumerate((0.11, 0.12), start=1):
        _speak(rig, qtbot, value, 2.0, 2.5)
        # The GUI has the chunk (a key-up before that would leave it to the final text).
        qtbot.waitUntil(lambda c=count: len(rig.controller.live.locked) == c, timeout=WAIT_MS)
    _speak(rig, qtbot, 0.13, 1.0, 0.2)
    rig.hotkeys.fire("dictate", False)


def test_chunks_settle_while_speaking_and_the_text_is_the_same(rig: Rig, qtbot: Any) -> None:
    _dictate(rig, qtbot)
    qtbot.waitUntil(lambda: bool(rig.output.delivered), timeout=WAIT_MS)
    assert [entry[0] for entry in rig.output.delivered] == ["w11 w12 w13"]
    assert rig.engine.settled_passes >= 1
    # Key-up transcribed only the tail: one call, after the settled chunks.
    assert rig.engine.names().count("transcribe") == 1
    assert rig.history.recent(1)[0].text == "w11 w12 w13"
    qtbot.waitUntil(lambda: bool(rig.records()), timeout=WAIT_MS)
    record = rig.records()[0]
    assert (record["segments"], record["settled_while_speaking"]) == (3, 2)
    assert rig.controller.live.preview is None  # "auto": this CPU is too slow for live text


def test_paste_at_each_pause_pastes_each_chunk_once(rig: Rig, qtbot: Any) -> None:
    rig.settings.set(S.PASTE_AT_EACH_PAUSE, True)
    _dictate(rig, qtbot)
    qtbot.waitUntil(lambda: len(rig.output.delivered) == 3, timeout=WAIT_MS)
    # Each piece after the first starts with the space that joins it to the one before: the
    # window holds the whole text; the history keeps each piece as it was said.
    assert [entry[0] for entry in rig.output.delivered] == ["w11", " w12", " w13"]
    assert [entry.text for entry in rig.history.recent(3)] == ["w13", "w12", "w11"]
    qtbot.waitUntil(lambda: bool(rig.records()), timeout=WAIT_MS)
    assert [record["event"] for record in rig.records()] == ["dictation"]
    assert rig.records()[0]["settled_while_speaking"] == 2


def test_cancel_drops_what_settled(rig: Rig, qtbot: Any) -> None:
    rig.hotkeys.fire("dictate", True)
    qtbot.waitUntil(lambda: rig.controller.recording, timeout=WAIT_MS)
    _speak(rig, qtbot, 0.11, 2.0, 2.5)
    qtbot.waitUntil(lambda: rig.engine.settled_passes >= 1, timeout=WAIT_MS)
    rig.hotkeys.fire("cancel", True)
    qtbot.waitUntil(lambda: bool(rig.records()), timeout=WAIT_MS)
    assert rig.records()[0]["event"] == "cancelled"
    qtbot.wait(600)
    assert not rig.output.delivered and len(rig.history) == 0


def test_live_preview_shows_locked_and_guessed_text_without_focus(rig: Rig, qtbot: Any) -> None:
    rig.settings.set(S.LIVE_TEXT, "on")
    rig.hotkeys.fire("dictate", True)
    qtbot.waitUntil(lambda: rig.controller.recording, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: rig.engine.state.value == "ready", timeout=WAIT_MS)
    _speak(rig, qtbot, 0.11, 2.0, 2.5)
    _speak(rig, qtbot, 0.12, 1.0, 0.0)
    live = rig.controller.live
    qtbot.waitUntil(
        lambda: live.preview is not None and live.preview.guess_text == "w12", timeout=WAIT_MS
    )
    preview = live.preview
    assert preview is not None and preview.isVisible()
    assert preview.locked_text == "w11"
    flags = preview.windowFlags()
    assert flags & Qt.WindowType.WindowDoesNotAcceptFocus
    assert preview.testAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating)
    # (The offscreen platform activates every window shown; the focus itself is checked
    # on a real X server.)
    rig.hotkeys.fire("dictate", False)
    qtbot.waitUntil(lambda: bool(rig.output.delivered), timeout=WAIT_MS)
    assert rig.output.delivered[0][0] == "w11 w12"
    assert not preview.isVisible()


def test_recording_overlay_shows_the_level_without_live_text_and_hides_at_key_up(
    rig: Rig, qtbot: Any
) -> None:
    rig.settings.set(S.RECORDING_OVERLAY, True)  # live text stays "auto": too slow here
    rig.hotkeys.fire("dictate", True)
    qtbot.waitUntil(lambda: rig.controller.recording, timeout=WAIT_MS)
    live = rig.controller.live
    overlay = live.preview
    assert overlay is not None and overlay.isVisible()
    assert overlay.indicator.isVisible() and "Recording" in overlay.indicator_label.text()
    flags = overlay.windowFlags()
    assert flags & Qt.WindowType.WindowDoesNotAcceptFocus
    assert flags & Qt.WindowType.X11BypassWindowManagerHint
    assert overlay.testAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating)
    assert overlay.level_bar.value() == 0
    # The bar follows the input: up while the user speaks, down again in the pause; each
    # value is the one the tray icon got, from the same poll of the recorder.
    told: list[float] = []
    rig.controller.level_changed.connect(told.append)
    rig.sd.stream.feed_seconds(0.5, value=0.3, block=800)
    qtbot.waitUntil(lambda: overlay.level_bar.value() > 90, timeout=WAIT_MS)
    assert overlay.level_bar.value() == _bar_for(told[-1])
    rig.sd.stream.feed_seconds(0.5, value=0.0, block=800)
    qtbot.waitUntil(lambda: overlay.level_bar.value() == 0, timeout=WAIT_MS)
    assert told[-1] == 0.0
    # A chunk settles, but without live text the overlay shows no words.
    qtbot.waitUntil(lambda: rig.engine.state.value == "ready", timeout=WAIT_MS)
    _speak(rig, qtbot, 0.11, 2.0, 2.5)
    qtbot.waitUntil(lambda: len(live.locked) == 1, timeout=WAIT_MS)
    assert overlay.label.isHidden() and overlay.locked_text == ""
    rig.hotkeys.fire("dictate", False)
    qtbot.waitUntil(lambda: bool(rig.output.delivered), timeout=WAIT_MS)
    assert not overlay.isVisible() and live.preview is overlay  # one window, reused


def _bar_for(rms: float) -> int:
    return round(level_fraction(rms) * LEVEL_STEPS)


def test_the_level_bar_follows_the_microphone_signal_only_while_the_indicator_shows(
    rig: Rig, qtbot: Any
) -> None:
    level = rig.controller.level_changed
    _hold_key_with_overlay(rig, qtbot)
    overlay = rig.controller.live.preview
    assert overlay is not None and overlay.level_bar.value() == 0
    for rms in (0.02, 0.2, 0.005):
        level.emit(rms)
        assert overlay.level_bar.value() == _bar_for(rms)
    assert 0 < _bar_for(0.005) < _bar_for(0.02) < _bar_for(0.2)
    rig.hotkeys.fire("dictate", False)
    qtbot.waitUntil(lambda: not overlay.isVisible(), timeout=WAIT_MS)
    level.emit(0.2)  # after key-up the bar is no longer connected
    assert overlay.level_bar.value() == 0 and not overlay.isVisible()
    # The next dictation starts with an empty bar, which follows the signal again.
    _hold_key_with_overlay(rig, qtbot)
    assert rig.controller.live.preview is overlay and overlay.level_bar.value() == 0
    level.emit(0.02)
    assert overlay.level_bar.value() == _bar_for(0.02)
    rig.hotkeys.fire("cancel", True)
    qtbot.waitUntil(lambda: not overlay.isVisible(), timeout=WAIT_MS)
    level.emit(0.2)
    assert overlay.level_bar.value() == 0


def test_without_the_indicator_setting_the_level_shows_no_overlay(rig: Rig, qtbot: Any) -> None:
    rig.hotkeys.fire("dictate", True)
    qtbot.waitUntil(lambda: rig.controller.recording, timeout=WAIT_MS)
    rig.controller.level_changed.emit(0.2)
    rig.sd.stream.feed_seconds(0.5, value=0.3, block=800)
    qtbot.wait(200)  # three polls of the level
    assert rig.controller.live.preview is None


def _hold_key_with_overlay(rig: Rig, qtbot: Any) -> None:
    rig.settings.set(S.RECORDING_OVERLAY, True)
    rig.hotkeys.fire("dictate", True)
    qtbot.waitUntil(lambda: rig.controller.recording, timeout=WAIT_MS)


def test_recording_overlay_hides_at_cancel(rig: Rig, qtbot: Any) -> None:
    rig.settings.set(S.RECORDING_OVERLAY, True)
    rig.hotkeys.fire("dictate", True)
    qtbot.waitUntil(lambda: rig.controller.recording, timeout=WAIT_MS)
    overlay = rig.controller.live.preview
    assert overlay is not None and overlay.isVisible()
    rig.hotkeys.fire("cancel", True)
    qtbot.waitUntil(lambda: not overlay.isVisible(), timeout=WAIT_MS)


def test_live_text_shows_under_the_recording_overlay(rig: Rig, qtbot: Any) -> None:
    rig.settings.set(S.RECORDING_OVERLAY, True)
    rig.settings.set(S.LIVE_TEXT, "on")
    rig.hotkeys.fire("dictate", True)
    qtbot.waitUntil(lambda: rig.controller.recording, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: rig.engine.state.value == "ready", timeout=WAIT_MS)
    _speak(rig, qtbot, 0.11, 2.0, 2.5)
    live = rig.controller.live
    overlay = live.preview
    assert overlay is not None
    qtbot.waitUntil(lambda: overlay.locked_text == "w11", timeout=WAIT_MS)
    assert overlay.indicator.isVisible() and overlay.label.isVisible()
    assert overlay.label.text() == "w11"
    rig.hotkeys.fire("dictate", False)
    qtbot.waitUntil(lambda: bool(rig.output.delivered), timeout=WAIT_MS)
    assert not overlay.isVisible()


def test_a_piece_after_another_starts_with_the_joining_separator() -> None:
    assert separator("First one.", "Second one.") == " "
    assert separator("你好。", "世界") == ""  # none between CJK characters
    assert separator("你好。", "OK") == " "
    assert separator("", "First one.") == ""  # the first piece: nothing before it
