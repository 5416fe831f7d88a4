"""Transcribing while the user speaks, in the real app on a private desktop (the set-up of
test_app_e2e.py: Xvfb, trayer, PulseAudio's virtual microphone fed with espeak-ng speech, a
real Qt text window, the tiny deterministic replica that says REPLICA_TEXT for every chunk of
speech, and the real FSMN-VAD), with live text on:

- a ≈60 s dictation with pauses: chunks settle while the user speaks (the app's report says
  how many), the final text lands in the window exactly as the same recording transcribed
  whole reads, and key-up → text is measured (printed and written
  to live-dictation.json in the test's tmp dir; not asserted). The live preview shows while
  the user speaks, found by its title, the focus stays on the text window before, while and
  after it shows, and it is hidden after key-up;
- the recording indicator with live text off: the same window shows from key-down, the focus
  stays on the text window all along, and it hides after key-up;
- "paste at each pause": the sentences land one by one while the user goes on speaking,
  the rest at key-up, and the window then holds the whole text once, joined as the whole
  recording's text is.

The app deletes a recording once its text is safe; the test keeps a hard link to it from the
moment it appears (`RecordingCatcher`), so "the same recording" is the very file the app wrote.
Toggle mode: "key-up" is the key press that stops the recording. Run with `-s` for numbers.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from desktop.app_driver import (
    HOTKEY,
    REPLICA_TEXT,
    App,
    Dictation,
    end_cleanly,
    history_texts,
    make_paused_speech_wav,
    wait_for_new_text,
)
from desktop.harness import DesktopSession, TextWindow
from nanodictate import settings as S
from nanodictate.core.asr.chunks import join_texts
from nanodictate.core.spool import SPOOL_FOLDER_NAME

pytestmark = pytest.mark.desktop

PREVIEW_TITLE = "nanodictate live text"  # ui/live_preview.py sets it (the overlay's too)
LONG_SENTENCES = [
    "Good morning everyone, this is a short note about the plans for the coming week.",
    "First, the team meets on Monday at ten to review the open questions.",
    "After lunch we test the new build on the machines in the second room.",
    "On Tuesday the writers finish the guide and send it out for comments.",
    "Wednesday is kept free for the visitors who come to see the demonstration.",
    "On Thursday we fix what the visitors found and plan the next release.",
    "Friday morning is for the reports, and the afternoon is free for everyone.",
    "Please write to me if one of these days does not suit you at all.",
    "Thank you, and have a good weekend when it finally comes around.",
]  # ≈4.3 s each at 170 words a minute: with the pauses, a 60 s dictation
LONG_PAUSE_S = 2.5
SHORT_SENTENCES = [
    "The first sentence is about the weather today.",
    "The second one says that the train was late.",
    "And the third one closes the little story.",
]
# Longer than a chunk needs to settle (the VAD's 0.8 s, the 1 s lookahead, the merge gap):
# each sentence can be pasted during the pause after it.
SHORT_PAUSE_S = 3.0
TAIL_S = 1.0  # silence before key-up: too short for the last sentence to settle before it


class RecordingCatcher:
    """Keeps a hard link to each recording the app writes to its spool folder, from the
    moment it appears, so it outlives the app's removal once the text is safe."""

    def __init__(self, app: App, keep: Path) -> None:
        self.folder = app.base / "data" / SPOOL_FOLDER_NAME
        self.keep = keep
        self.kept: list[Path] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        keep.mkdir(parents=True, exist_ok=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                names = [n for n in os.listdir(self.folder) if n.endswith(".wav")]
            except FileNotFoundError:
                names = []
            for name in names:
                target = self.keep / name
                if target not in self.kept:
                    try:
                        os.link(self.folder / name, target)
                    except FileNotFoundError:  # removed meanwhile: the text was faster
                        continue
                    self.kept.append(target)
            time.sleep(0.002)

    def stop(self) -> list[Path]:
        self._stop.set()
        self._thread.join(timeout=5)
        return self.kept


@pytest.fixture(scope="module")
def transcribe_whole(
    models_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[Path], str]]:
    """A recording transcribed at once, as `nanodictate transcribe` does it, by an engine in
    this process (loaded at the first call, once for the module), with the app's models."""
    from nanodictate.core.asr.engine import Engine
    from nanodictate.core.transcriber import EngineState

    engine = Engine(
        models_root / "Fun-ASR-MLT-Nano-2512",
        vad_dir=models_root / "fsmn-vad",
        cache_dir=tmp_path_factory.mktemp("whole-cache"),
    )

    def transcribe(wav: Path) -> str:
        if engine.state is EngineState.UNLOADED:
            engine.load("int8", "cpu")  # the app's defaults on this machine
        return engine.transcribe(wav, language="en").text

    yield transcribe
    engine.unload()


def preview_windows(desk: DesktopSession) -> list[int]:
    """The live preview's window ids, while it is shown."""
    found = desk.run(
        ["xdotool", "search", "--onlyvisible", "--name", f"^{PREVIEW_TITLE}$"], check=False
    )
    return [int(line) for line in found.stdout.decode().split()]


def watch_while_speaking(
    desk: DesktopSession,
    window: TextWindow,
    playing: subprocess.Popen[bytes] | None,
    started: float,
) -> dict[str, Any]:
    """While the speech plays: when the preview first showed, and the focus all the time."""
    assert playing is not None
    first_seen: float | None = None
    focus_lost: list[int] = []
    while playing.poll() is None:
        if first_seen is None and preview_windows(desk):
            first_seen = time.monotonic() - started
        focused = desk.focused_window_id()
        if focused != window.window_id:
            focus_lost.append(focused)
        time.sleep(0.25)
    assert playing.returncode == 0, desk.log_tail("paplay")
    return {"preview_first_seen_s": first_seen, "focus_elsewhere": focus_lost}


def test_long_dictation_settles_while_speaking_with_live_preview(
    desktop: DesktopSession,
    models_root: Path,
    transcribe_whole: Callable[[Path], str],
    tmp_path: Path,
) -> None:
    desk = desktop
    speech, spans = make_paused_speech_wav(
        tmp_path / "speech", LONG_SENTENCES, LONG_PAUSE_S, tail_s=TAIL_S
    )
    settings = {S.HOTKEY_MODE: "toggle", S.LIVE_TEXT: "on"}
    app = App(desk, tmp_path / "app", settings, models_root)
    window = desk.open_text_window()
    window.focus()
    assert preview_windows(desk) == []
    since = app.mark()

    # The model loads at key-down (a fresh app), while the user speaks.
    desk.xdotool("key", HOTKEY)
    started = time.monotonic()
    playing = desk.play_speech(speech, wait=False)
    seen = watch_while_speaking(desk, window, playing, started)
    catcher = RecordingCatcher(app, tmp_path / "kept")
    key_up = time.monotonic()
    desk.xdotool("key", HOTKEY)
    text, landed = wait_for_new_text(window, "", 120)
    record = app.wait_record(lambda r: r["event"] == "dictation", 30, "the report", since=since)
    desk.wait_for(lambda: not preview_windows(desk), 5, "the live preview to hide")
    assert desk.focused_window_id() == window.window_id
    kept = catcher.stop()

    # The text: as the whole recording transcribed at once reads — one chunk a sentence.
    assert len(kept) == 1, f"the recording was not caught: {kept}"
    assert text == transcribe_whole(kept[0])
    assert text == join_texts([REPLICA_TEXT] * len(LONG_SENTENCES))
    assert history_texts(app) == [text]
    assert record["ok"] is True and record["segments"] == len(LONG_SENTENCES)
    assert record["settled_while_speaking"] >= 1, record
    # The preview showed while the user spoke, and never took the focus.
    assert seen["preview_first_seen_s"] is not None, "the live preview never showed"
    assert seen["focus_elsewhere"] == []

    numbers = {
        "speech_seconds": round(spans[-1][1] + TAIL_S, 1),
        "audio_seconds": record["audio_seconds"],
        "sentences": len(LONG_SENTENCES),
        "settled_while_speaking": record["settled_while_speaking"],
        "key_up_to_text_in_window_ms": round((landed - key_up) * 1000, 1),
        "key_up_to_pasted_ms_app": record["key_up_to_pasted_ms"],
        "transcribe_ms_app": record["transcribe_ms"],
        "preview_first_seen_s": round(seen["preview_first_seen_s"], 2),
        "model_load_seconds": record.get("load_seconds"),
    }
    (tmp_path / "live-dictation.json").write_text(json.dumps(numbers, indent=2))
    print(f"\n[live] {json.dumps(numbers)}")
    end_cleanly(desk, app)


def test_paste_at_each_pause_lands_sentence_by_sentence(
    desktop: DesktopSession,
    models_root: Path,
    transcribe_whole: Callable[[Path], str],
    tmp_path: Path,
) -> None:
    desk = desktop
    speech, spans = make_paused_speech_wav(
        tmp_path / "speech", SHORT_SENTENCES, SHORT_PAUSE_S, tail_s=TAIL_S
    )
    settings = {S.HOTKEY_MODE: "toggle", S.LIVE_TEXT: "on", S.PASTE_AT_EACH_PAUSE: True}
    app = App(desk, tmp_path / "app", settings, models_root)
    window = desk.open_text_window()
    window.focus()
    dictate = Dictation(desk, "toggle")
    # A first press with silence loads the model: the sentences are then timed as a user
    # with the model loaded would see them.
    since = app.mark()
    dictate.run(None, quiet_s=0.5)
    app.wait_record(lambda r: r["event"] == "no_speech", 120, "the model to load", since=since)
    since = app.mark()

    desk.xdotool("key", HOTKEY)
    started = time.monotonic()
    playing = desk.play_speech(speech, wait=False)
    assert playing is not None
    seen: list[tuple[float, str]] = []  # (seconds into the speech, the window's new text)
    while playing.poll() is None:
        current = window.text()
        if not seen or current != seen[-1][1]:
            seen.append((time.monotonic() - started, current))
        time.sleep(0.02)
    catcher = RecordingCatcher(app, tmp_path / "kept")
    key_up = time.monotonic()
    desk.xdotool("key", HOTKEY)
    pieces = [join_texts([REPLICA_TEXT] * count) for count in range(len(SHORT_SENTENCES) + 1)]
    whole = pieces[-1]
    window.wait_for_text(whole, 60)
    landed = time.monotonic()
    record = app.wait_record(lambda r: r["event"] == "dictation", 30, "the report", since=since)
    kept = catcher.stop()

    # Before key-up the window went through one sentence, then (unless the machine is slow)
    # two: each pasted on its own, none twice. The last one needs its pause to settle.
    before_key_up = [text for _, text in seen]
    assert before_key_up[0] == ""
    assert before_key_up[1:] == pieces[1 : len(before_key_up)], before_key_up
    assert 2 <= len(before_key_up) <= len(SHORT_SENTENCES), seen
    # After it: the whole text once, as the recording transcribed at once reads.
    time.sleep(1.0)  # nothing more may arrive
    assert window.text() == whole
    assert len(kept) == 1, f"the recording was not caught: {kept}"
    assert transcribe_whole(kept[0]) == whole
    assert history_texts(app) == [REPLICA_TEXT] * len(SHORT_SENTENCES)
    assert 1 <= record["settled_while_speaking"] <= len(SHORT_SENTENCES) - 1

    ends = [end for _, end in spans]
    arrivals = [(round(at, 2), text.count(REPLICA_TEXT)) for at, text in seen[1:]]
    print(
        f"\n[pause] sentences end at {[round(end, 2) for end in ends]} s; the window got "
        f"(s, sentences) {arrivals}; key-up → last sentence in window "
        f"{(landed - key_up) * 1000:.0f} ms"
    )
    end_cleanly(desk, app)


def test_recording_overlay_without_live_text_keeps_the_focus(
    desktop: DesktopSession, models_root: Path, tmp_path: Path
) -> None:
    desk = desktop
    speech, _spans = make_paused_speech_wav(
        tmp_path / "speech", SHORT_SENTENCES[:1], SHORT_PAUSE_S, tail_s=TAIL_S
    )
    settings = {S.HOTKEY_MODE: "toggle", S.LIVE_TEXT: "off", S.RECORDING_OVERLAY: True}
    app = App(desk, tmp_path / "app", settings, models_root)
    window = desk.open_text_window()
    window.focus()
    assert preview_windows(desk) == []

    desk.xdotool("key", HOTKEY)
    started = time.monotonic()
    desk.wait_for(lambda: bool(preview_windows(desk)), 5, "the recording overlay to show")
    assert desk.focused_window_id() == window.window_id
    playing = desk.play_speech(speech, wait=False)
    seen = watch_while_speaking(desk, window, playing, started)
    desk.xdotool("key", HOTKEY)
    text, _landed = wait_for_new_text(window, "", 120)
    desk.wait_for(lambda: not preview_windows(desk), 5, "the recording overlay to hide")

    assert text == REPLICA_TEXT
    assert seen["preview_first_seen_s"] is not None, "the overlay was not shown while speaking"
    assert seen["focus_elsewhere"] == []
    assert desk.focused_window_id() == window.window_id
    end_cleanly(desk, app)
