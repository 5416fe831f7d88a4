"""Faults a user meets, on the real app on a private desktop (see test_app_e2e.py for the set-up):
a long first dictation while the model loads (the case that crashed the app with SIGSEGV), the
engine's process killed during a dictation, a hundred hotkey presses in ten seconds, and the
target window closed before the paste. Each ends with the app running and no text lost."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import psutil
import pytest

from desktop.app_driver import (
    HOTKEY,
    REPLICA_TEXT,
    App,
    Dictation,
    end_cleanly,
    engine_processes,
    history_texts,
    make_speech_wav,
    wait_for_new_text,
)
from desktop.harness import DesktopSession
from nanodictate import settings as S

pytestmark = pytest.mark.desktop

SPEECH = "Please write this sentence down."


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_speech_wav(tmp_path_factory.mktemp("speech"), SPEECH)


def is_running(process: psutil.Process) -> bool:
    """False once it ended (a zombie until the app reaps it at its next call)."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_long_first_dictation_while_the_model_loads(
    desktop: DesktopSession, models_root: Path, speech_wav: Path, tmp_path: Path
) -> None:
    """Toggle mode, right after start: the model finishes loading while the user still
    speaks, and the transcription is a request of its own (SIGSEGV before the fix)."""
    desk = desktop
    app = App(desk, tmp_path / "app", {S.HOTKEY_MODE: "toggle"}, models_root)
    window = desk.open_text_window()
    window.focus()
    since = app.mark()
    desk.xdotool("key", HOTKEY)  # starts the recording and the model's load
    desk.play_speech(speech_wav)
    desk.wait_for(lambda: "Model loaded" in app.log(), 120, "the model to load mid-recording")
    desk.play_speech(speech_wav)  # still speaking after the load
    desk.xdotool("key", HOTKEY)
    text, _ = wait_for_new_text(window, "", 60)
    assert text in (REPLICA_TEXT, f"{REPLICA_TEXT} {REPLICA_TEXT}")
    record = app.wait_record(lambda r: r["event"] == "dictation", 15, "the report", since=since)
    assert record["ok"] is True and "load_seconds" not in record  # loaded before key-up
    assert app.process.poll() is None
    end_cleanly(desk, app)


def test_engine_process_killed_during_a_dictation(
    desktop: DesktopSession, models_root: Path, speech_wav: Path, tmp_path: Path
) -> None:
    desk = desktop
    app = App(desk, tmp_path / "app", {S.HOTKEY_MODE: "toggle"}, models_root)
    window = desk.open_text_window()
    window.focus()
    desk.xdotool("key", HOTKEY)
    desk.wait_for(lambda: "Model loaded" in app.log(), 120, "the model to load")
    [engine] = engine_processes(app)
    engine.send_signal(signal.SIGSEGV)  # as a crash in native code would end it
    desk.wait_for(lambda: not is_running(engine), 10, "the engine process to die")
    desk.play_speech(speech_wav)
    desk.xdotool("key", HOTKEY)
    text, _ = wait_for_new_text(window, "", 120)
    assert text == REPLICA_TEXT
    assert "killed by SIGSEGV" in app.log()
    assert "Notification: Speech engine restarted" in app.log()
    assert [p.pid for p in engine_processes(app)] != [engine.pid]
    assert history_texts(app) == [REPLICA_TEXT]
    end_cleanly(desk, app)


def test_a_hundred_presses_in_ten_seconds(
    desktop: DesktopSession, models_root: Path, speech_wav: Path, tmp_path: Path
) -> None:
    """Taps and short holds of mixed lengths with no speech: nothing is pasted, the app keeps
    up, and the next real dictation works."""
    desk = desktop
    app = App(desk, tmp_path / "app", {S.UNLOAD_AFTER_MINUTES: -1}, models_root)
    window = desk.open_text_window()
    window.focus()
    # Mostly taps, some holds past the 0.3 s tap limit (silent recordings).
    lengths = random.Random(100).choices(
        [0.01, 0.02, 0.04, 0.06, 0.35], weights=[3, 3, 2, 1, 1], k=100
    )
    # One xdotool run for all of them: a process per key event would take longer than 10 s.
    chain: list[str | int | float] = []
    for seconds in lengths:
        chain += ["keydown", "--delay", 0, HOTKEY, "sleep", seconds]
        chain += ["keyup", "--delay", 0, HOTKEY, "sleep", 0.01]
    planned = sum(lengths) + 0.01 * len(lengths)
    assert planned <= 10.0  # the schedule; xdotool's own speed is the machine's business
    started = time.monotonic()
    desk.xdotool(*chain, timeout=60)
    pressing = time.monotonic() - started
    # Afterwards: the model loaded at the first press, every short recording answered.
    app.wait_tray_state("ready", 0, timeout=120)
    time.sleep(1)
    assert window.text() == ""  # no stray paste
    assert app.process.poll() is None
    events = [r["event"] for r in app.records() if r["event"] != "tray"]
    assert events.count("dictation") == 0
    # The next dictation works as always.
    since = app.mark()
    Dictation(desk, "push_to_talk").run(speech_wav)
    text, _ = wait_for_new_text(window, "", 120)
    assert text == REPLICA_TEXT
    app.wait_record(lambda r: r["event"] == "dictation", 15, "the report", since=since)
    print(f"\n100 presses in {pressing:.1f} s (planned {planned:.1f} s); events: {len(events)}")
    end_cleanly(desk, app)


def test_target_window_closed_before_the_paste(
    desktop: DesktopSession, models_root: Path, speech_wav: Path, tmp_path: Path
) -> None:
    desk = desktop
    app = App(desk, tmp_path / "app", {S.HOTKEY_MODE: "toggle"}, models_root)
    window = desk.open_text_window()
    window.focus()
    since = app.mark()
    desk.xdotool("key", HOTKEY)
    desk.play_speech(speech_wav)
    window.close()  # gone before the text is ready (the model still loads)
    desk.xdotool("key", HOTKEY)
    record = app.wait_record(lambda r: r["event"] == "dictation", 120, "the report", since=since)
    assert record["ok"] is False
    assert history_texts(app) == [REPLICA_TEXT]
    assert desk.read_clipboard_text() == REPLICA_TEXT
    assert "Notification: Paste failed: The window you dictated into is gone" in app.log()
    end_cleanly(desk, app)
