"""The dictation state machine with the real worker thread, recorder and history, and small
fakes for the engine, the microphone and the desktop (tests named ..._fake_engine)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from controller_rig import WAIT_MS, Rig, hold
from tests_support import fill_disk
from ui_fakes import FakeEngine, FakeHotkeys

from nanodictate import settings as S
from nanodictate.core.dictation import AppState
from nanodictate.core.errors import ModelMissingError
from nanodictate.core.ports import WindowInfo
from nanodictate.core.text_output import OutputResult, PasteMethod
from nanodictate.core.transcriber import LoadReport, Precision
from nanodictate.ui.worker import EngineService


def test_push_to_talk_dictation_fake_engine(rig: Rig, qtbot: Any) -> None:
    rig.hotkeys.fire("dictate", True)
    qtbot.waitUntil(lambda: rig.controller.recording, timeout=WAIT_MS)
    assert rig.controller.state is AppState.RECORDING
    assert "cancel" in rig.hotkeys.registered  # Esc is grabbed only while recording
    assert "cancel:held" in rig.hotkeys.registered  # …also with Ctrl+Alt held
    # The model starts loading at key-down, while the user speaks.
    qtbot.waitUntil(lambda: "load" in rig.engine.names(), timeout=WAIT_MS)
    rig.sd.stream.feed_seconds(1.0, value=0.1, block=160)
    rig.clock.now += 1.0
    rig.hotkeys.fire("dictate", False)
    qtbot.waitUntil(lambda: bool(rig.output.delivered), timeout=WAIT_MS)
    text, method, target, history_size = rig.output.delivered[0]
    assert text == "hello world" and method is PasteMethod.PASTE
    assert target is rig.focus.window  # the window focused at key-down
    assert history_size == 1  # written before the paste
    assert rig.history.recent(1)[0].text == "hello world"
    assert "cancel" not in rig.hotkeys.registered
    qtbot.waitUntil(lambda: rig.controller.state is AppState.READY, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: bool(rig.records()), timeout=WAIT_MS)
    record = rig.records()[0]
    assert record["event"] == "dictation" and record["ok"] is True
    assert record["audio_seconds"] >= 1.0
    assert "key_up_to_done_ms" in record and "text" not in record
    assert "transcribing" in rig.states
    assert ("transcribe", "en", (), True) in rig.engine.calls


def test_tap_shorter_than_0_3_s_is_ignored_fake_engine(rig: Rig, qtbot: Any) -> None:
    hold(rig, qtbot, 0.2)
    qtbot.waitUntil(lambda: not rig.controller.recording, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: bool(rig.records()), timeout=WAIT_MS)
    assert rig.records()[0]["event"] == "ignored_tap"
    qtbot.wait(50)
    assert "transcribe" not in rig.engine.names()
    assert not rig.output.delivered and len(rig.history) == 0


def test_key_repeat_while_held_is_ignored_fake_engine(rig: Rig, qtbot: Any) -> None:
    rig.hotkeys.fire("dictate", True)
    qtbot.waitUntil(lambda: rig.controller.recording, timeout=WAIT_MS)
    rig.hotkeys.fire("dictate", True)  # a repeat: must not stop or restart
    rig.sd.stream.feed_seconds(0.5, block=160)
    rig.clock.now += 0.5
    qtbot.wait(20)
    assert rig.controller.recording
    rig.hotkeys.fire("dictate", False)
    qtbot.waitUntil(lambda: len(rig.output.delivered) == 1, timeout=WAIT_MS)


def test_toggle_mode_fake_engine(rig: Rig, qtbot: Any) -> None:
    rig.settings.set(S.HOTKEY_MODE, "toggle")
    rig.hotkeys.fire("dictate", True)
    qtbot.waitUntil(lambda: rig.controller.recording, timeout=WAIT_MS)
    rig.hotkeys.fire("dictate", False)  # releasing does not stop in toggle mode
    rig.sd.stream.feed_seconds(0.5, block=160)
    rig.clock.now += 0.1  # short is fine in toggle mode
    qtbot.wait(20)
    assert rig.controller.recording
    rig.hotkeys.fire("dictate", True)
    qtbot.waitUntil(lambda: len(rig.output.delivered) == 1, timeout=WAIT_MS)


def test_dedicated_toggle_key_and_language_hotkey_fake_engine(rig: Rig, qtbot: Any) -> None:
    rig.settings.set(S.HOTKEY_TOGGLE, "ctrl+alt+t")
    rig.settings.set(S.FAVOURITE_HOTKEYS, {"ja": "ctrl+alt+j"})
    assert {"toggle", "lang:ja"} <= set(rig.hotkeys.registered)
    hold(rig, qtbot, 0.5, "lang:ja")
    qtbot.waitUntil(lambda: len(rig.output.delivered) == 1, timeout=WAIT_MS)
    assert rig.history.recent(1)[0].language == "ja"


def test_cancel_discards_the_recording_fake_engine(rig: Rig, qtbot: Any) -> None:
    rig.hotkeys.fire("dictate", True)
    qtbot.waitUntil(lambda: rig.controller.recording, timeout=WAIT_MS)
    rig.sd.stream.feed_seconds(1.0, block=160)
    rig.clock.now += 1.0
    rig.hotkeys.fire("cancel", True)
    qtbot.waitUntil(lambda: not rig.controller.recording, timeout=WAIT_MS)
    rig.hotkeys.fire("dictate", False)  # the release after Esc does nothing
    qtbot.wait(50)
    assert "transcribe" not in rig.engine.names()
    assert "cancel" not in rig.hotkeys.registered
    assert rig.records()[0]["event"] == "cancelled"


def test_cli_commands_fake_engine(rig: Rig, qtbot: Any) -> None:
    assert rig.controller.command("start")
    assert rig.controller.recording
    rig.sd.stream.feed_seconds(0.5, block=160)
    assert rig.controller.command("stop")
    qtbot.waitUntil(lambda: len(rig.output.delivered) == 1, timeout=WAIT_MS)
    assert rig.controller.command("toggle") and rig.controller.recording
    assert rig.controller.command("cancel") and not rig.controller.recording
    assert not rig.controller.command("explode")


def test_precision_change_unloads_and_next_load_uses_it_fake_engine(rig: Rig, qtbot: Any) -> None:
    rig.controller.engine.load()
    qtbot.waitUntil(lambda: rig.controller.engine.state == "ready", timeout=WAIT_MS)
    rig.settings.set(S.PRECISION, "fp32")
    qtbot.waitUntil(lambda: rig.controller.engine.state == "unloaded", timeout=WAIT_MS)
    assert rig.engine.names()[-1] == "unload"
    hold(rig, qtbot, 0.5)
    qtbot.waitUntil(lambda: len(rig.output.delivered) == 1, timeout=WAIT_MS)
    assert ("load", "fp32", "auto") in rig.engine.calls
    rig.settings.set(S.DEVICE, "cpu")
    qtbot.waitUntil(lambda: rig.controller.engine.state == "unloaded", timeout=WAIT_MS)


def test_idle_timer_unloads_and_the_icon_follows_fake_engine(rig: Rig, qtbot: Any) -> None:
    hold(rig, qtbot, 0.5)
    qtbot.waitUntil(lambda: len(rig.output.delivered) == 1, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: rig.controller.state is AppState.READY, timeout=WAIT_MS)
    # Shrunk only now: a 30 ms "minute" from the transcription could end before the paste
    # lane has told the controller, and the icon would skip "ready".
    rig.service.worker.minute_ms = 30
    rig.settings.set(S.UNLOAD_AFTER_MINUTES, 1)  # the new policy re-arms the idle timer
    qtbot.waitUntil(lambda: rig.controller.engine.state == "unloaded", timeout=WAIT_MS)
    assert rig.engine.names()[-1] == "unload"
    qtbot.waitUntil(lambda: rig.controller.state is AppState.UNLOADED, timeout=WAIT_MS)
    assert rig.states[-2:] == ["ready", "unloaded"]


def test_two_tier_idle_offloads_the_gpu_first_fake_engine(
    rig: Rig, engine: FakeEngine, qtbot: Any
) -> None:
    engine.device = "cuda"
    rig.service.worker.minute_ms = 30
    rig.settings.set(S.UNLOAD_AFTER_MINUTES, 1)
    actions: list[str] = []
    rig.service.worker.idle_action.connect(actions.append)
    rig.controller.engine.load()
    qtbot.waitUntil(lambda: actions == ["offload", "unload"], timeout=WAIT_MS)
    assert rig.engine.names()[-2:] == ["offload", "unload"]


def test_unload_immediately_fake_engine(rig: Rig, qtbot: Any) -> None:
    rig.settings.set(S.UNLOAD_AFTER_MINUTES, 0)
    hold(rig, qtbot, 0.5)
    qtbot.waitUntil(lambda: len(rig.output.delivered) == 1, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: rig.controller.engine.state == "unloaded", timeout=WAIT_MS)


def test_unload_immediately_keeps_the_key_down_preload_fake_engine(
    rig: Rig, engine: FakeEngine, qtbot: Any
) -> None:
    """The model loaded at key-down stays for the transcription (one load per dictation, not
    load, unload, load); a cancelled dictation unloads it at once."""
    rig.settings.set(S.UNLOAD_AFTER_MINUTES, 0)
    rig.hotkeys.fire("dictate", True)
    qtbot.waitUntil(lambda: rig.controller.engine.state == "ready", timeout=WAIT_MS)
    qtbot.wait(50)  # an unload, if one came, would have come by now
    assert rig.controller.engine.state == "ready"
    rig.sd.stream.feed_seconds(0.5, value=0.1, block=160)
    rig.clock.now += 0.5
    rig.hotkeys.fire("dictate", False)
    qtbot.waitUntil(lambda: len(rig.output.delivered) == 1, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: rig.controller.engine.state == "unloaded", timeout=WAIT_MS)
    assert [c[0] for c in engine.calls] == ["load", "load", "transcribe", "unload"]

    rig.hotkeys.fire("dictate", True)
    qtbot.waitUntil(lambda: rig.controller.engine.state == "ready", timeout=WAIT_MS)
    rig.hotkeys.fire("cancel", True)
    qtbot.waitUntil(lambda: rig.controller.engine.state == "unloaded", timeout=WAIT_MS)
    assert rig.records()[-1]["event"] == "cancelled"


def test_requests_run_in_order_from_a_bounded_queue_fake_engine(
    qtbot: Any, engine: FakeEngine
) -> None:
    import numpy as np

    from nanodictate.ui.engine_requests import LoadRequest, QueueFull, TranscribeRequest

    engine.gate = threading.Event()
    service = EngineService(lambda: engine, max_pending=2)
    try:
        done: list[int] = []
        service.worker.transcribed.connect(lambda result: done.append(result.job_id))
        service.submit(LoadRequest("int8", "auto"))
        qtbot.waitUntil(lambda: service.worker.pending == 0, timeout=WAIT_MS)  # now loading
        audio = np.ones(1600, dtype=np.float32)
        for job in (1, 2):
            service.submit(TranscribeRequest(job, audio, 16000, "en", "int8", "auto"))
        with pytest.raises(QueueFull):
            service.submit(TranscribeRequest(3, audio, 16000, "en", "int8", "auto"))
        engine.gate.set()
        qtbot.waitUntil(lambda: done == [1, 2], timeout=WAIT_MS)
        assert [c[0] for c in engine.calls] == ["load", "load", "transcribe", "load", "transcribe"]
        # The engine lives on the worker thread, never the GUI thread.
        assert engine.threads == {"nanodictate-engine"} or "MainThread" not in engine.threads
    finally:
        service.stop()


def test_model_missing_is_reported_for_download_fake_engine(
    rig: Rig, engine: FakeEngine, qtbot: Any
) -> None:
    engine.load_error = ModelMissingError("Fun-ASR-MLT-Nano-2512 is not installed")
    with qtbot.waitSignal(rig.controller.model_missing, timeout=WAIT_MS):
        hold(rig, qtbot, 0.5)
    qtbot.waitUntil(lambda: rig.controller.state is AppState.ERROR, timeout=WAIT_MS)
    assert not rig.output.delivered


def test_memory_fallback_is_told_fake_engine(rig: Rig, qtbot: Any) -> None:
    report = LoadReport(Precision.INT8, "cpu", 1.0, False, "not enough free memory")
    rig.service.worker.loaded.emit(report)
    qtbot.waitUntil(
        lambda: "Model loaded with less memory" in rig.notifier.titles(), timeout=WAIT_MS
    )
    assert "INT8 on the CPU" in rig.notifier.messages[-1][1]


def test_taken_hotkey_is_told(qtbot: Any, tmp_path: Path, engine: FakeEngine) -> None:
    rig = Rig(tmp_path, engine, FakeHotkeys(taken=["ctrl+alt+space"]))
    try:
        assert rig.notifier.titles() == ["Hotkey problem"]
        assert "already used" in rig.notifier.messages[0][1]
    finally:
        rig.close()


def test_paste_failure_is_told_and_text_kept_fake_engine(rig: Rig, qtbot: Any) -> None:
    rig.output.result = OutputResult(
        False, PasteMethod.PASTE, "The paste failed. It is on the clipboard and in Recent."
    )
    hold(rig, qtbot, 0.5)
    qtbot.waitUntil(lambda: "Paste failed" in rig.notifier.titles(), timeout=WAIT_MS)
    assert len(rig.history) == 1


def test_lost_microphone_transcribes_what_was_captured_fake_engine(rig: Rig, qtbot: Any) -> None:
    rig.hotkeys.fire("dictate", True)
    qtbot.waitUntil(lambda: rig.controller.recording, timeout=WAIT_MS)
    rig.sd.stream.feed_seconds(0.8, block=160)
    rig.clock.now += 0.8
    rig.sd.stream.lose_device()
    qtbot.waitUntil(lambda: len(rig.output.delivered) == 1, timeout=WAIT_MS)
    assert "Microphone lost" in rig.notifier.titles()
    qtbot.waitUntil(lambda: bool(rig.records()), timeout=WAIT_MS)
    assert rig.records()[0]["stop_reason"] == "device_lost"


def test_no_speech_pastes_nothing_fake_engine(rig: Rig, qtbot: Any) -> None:
    rig.hotkeys.fire("dictate", True)
    qtbot.waitUntil(lambda: rig.controller.recording, timeout=WAIT_MS)
    rig.sd.stream.feed_seconds(0.5, value=0.0, block=160)  # silence
    rig.clock.now += 0.5
    rig.hotkeys.fire("dictate", False)
    qtbot.waitUntil(lambda: "No speech heard" in rig.notifier.titles(), timeout=WAIT_MS)
    assert not rig.output.delivered and len(rig.history) == 0


# ---------------------------------------------------------------------------- kept recordings


class FailingEngine(FakeEngine):
    """Loads, then fails every transcription with a user-facing error."""

    def transcribe(self, *args: Any, **kwargs: Any) -> Any:
        from nanodictate.core.errors import EngineCrashedError

        raise EngineCrashedError("The speech engine stopped unexpectedly (killed by SIGSEGV).")


def test_recording_is_on_disk_from_key_up_until_its_text_is_in_history_fake_engine(
    rig: Rig, qtbot: Any
) -> None:
    rig.engine.gate = threading.Event()  # hold the load, so the transcription waits
    hold(rig, qtbot, 1.0)
    qtbot.waitUntil(lambda: not rig.controller.recording, timeout=WAIT_MS)
    kept = list(rig.spool.folder.glob("*.wav"))
    assert len(kept) == 1 and kept[0].stat().st_mode & 0o777 == 0o600
    assert rig.spool.folder.stat().st_mode & 0o777 == 0o700
    assert len(rig.history) == 0
    rig.engine.gate.set()
    qtbot.waitUntil(lambda: bool(rig.output.delivered), timeout=WAIT_MS)
    assert rig.history.recent(1)[0].text == "hello world"
    assert list(rig.spool.folder.iterdir()) == []


def test_failed_recording_is_kept_and_recovered_at_the_next_start_fake_engine(
    qtbot: Any, tmp_path: Path, hotkeys: FakeHotkeys
) -> None:
    failing = Rig(tmp_path, FailingEngine(), hotkeys)
    try:
        hold(failing, qtbot, 1.0)
        qtbot.waitUntil(
            lambda: "Transcription failed" in failing.notifier.titles(), timeout=WAIT_MS
        )
        message = failing.notifier.messages[-1][1]
        assert "recording is kept" in message
        assert len(list(failing.spool.folder.glob("*.wav"))) == 1
    finally:
        failing.close()
    # The next start, with an engine that works.
    rig = Rig(tmp_path, FakeEngine(text="recovered words"), FakeHotkeys())
    try:
        assert rig.controller.offer_recovery() == 1
        assert rig.notifier.titles()[-1] == "Unfinished dictation"
        action = rig.notifier.actions[-1]
        assert action is not None
        action()
        qtbot.waitUntil(lambda: bool(rig.output.delivered), timeout=WAIT_MS)
        text, method, target, _ = rig.output.delivered[0]
        # Text to history and the clipboard; the window of that session is gone.
        assert (text, method, target) == ("recovered words", PasteMethod.COPY, None)
        assert rig.history.recent(1)[0].text == "recovered words"
        assert list(rig.spool.folder.iterdir()) == []
        assert rig.controller.offer_recovery() == 0
    finally:
        rig.close()


def test_history_on_a_full_disk_still_pastes_and_tells_fake_engine(
    qtbot: Any, tmp_path: Path, engine: FakeEngine, hotkeys: FakeHotkeys, tiny_disk: Path
) -> None:
    rig = Rig(tmp_path, engine, hotkeys, history_path=tiny_disk / "history.sqlite3")
    try:
        fill_disk(tiny_disk)
        hold(rig, qtbot, 1.0)
        qtbot.waitUntil(lambda: "History not saved" in rig.notifier.titles(), timeout=WAIT_MS)
        assert [d[0] for d in rig.output.delivered] == ["hello world"]
        message = rig.notifier.messages[-1][1]
        assert "was pasted" in message and "full" in message
        # In the window, so the recording on disk is no longer needed.
        assert list(rig.spool.folder.iterdir()) == []
    finally:
        rig.close()


class SlowStartEngine(FakeEngine):
    """Says nothing until `started` is set, as the engine's process while it starts."""

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Event()

    def load(self, precision: Any = "int8", device: Any = "auto") -> LoadReport:
        self.started.wait(5)
        return super().load(precision, device)


def test_presses_while_the_engine_starts_ask_for_one_load_fake_engine(
    qtbot: Any, tmp_path: Path, hotkeys: FakeHotkeys
) -> None:
    engine = SlowStartEngine()
    rig = Rig(tmp_path, engine, hotkeys)
    try:
        for _ in range(12):  # more than the worker's queue holds
            rig.hotkeys.fire("dictate", True)
            qtbot.waitUntil(lambda: rig.controller.recording, timeout=WAIT_MS)
            rig.clock.now += 0.05  # a tap: no transcription
            rig.hotkeys.fire("dictate", False)
            qtbot.waitUntil(lambda: not rig.controller.recording, timeout=WAIT_MS)
        engine.started.set()
        qtbot.waitUntil(lambda: rig.controller.engine.state == "ready", timeout=WAIT_MS)
        qtbot.wait(100)
        assert engine.names().count("load") == 1
        assert "Busy" not in rig.notifier.titles()
    finally:
        rig.close()


def test_dictations_beyond_the_engines_queue_are_kept_and_sent_when_it_drains_fake_engine(
    rig: Rig, engine: FakeEngine, qtbot: Any
) -> None:
    """Nothing said is lost to a full queue: what the engine cannot take yet waits in the
    controller and goes out when the worker drains; the user is told once, not per dictation."""
    from nanodictate.ui.worker import MAX_PENDING

    engine.gate = threading.Event()  # the model load at the first key-down waits
    dictations = MAX_PENDING + 4
    for _ in range(dictations):
        hold(rig, qtbot, 0.5)
        qtbot.waitUntil(lambda: not rig.controller.recording, timeout=WAIT_MS)
    assert rig.controller.book.deferred  # the queue was full
    assert rig.notifier.titles().count("Busy") == 1
    engine.gate.set()
    qtbot.waitUntil(lambda: len(rig.history) == dictations, timeout=WAIT_MS)
    assert not rig.controller.book.deferred and not rig.controller.book.pending
    assert [e.text for e in rig.history.recent(dictations)] == ["hello world"] * dictations
    assert rig.notifier.titles().count("Busy") == 1
    assert not rig.spool.orphans()  # every kept recording released once its text was safe


def test_a_profile_sets_the_language_and_adds_hotwords_for_its_window_fake_engine(
    rig: Rig, qtbot: Any
) -> None:
    S.profiles_file().parent.mkdir(parents=True, exist_ok=True)
    S.profiles_file().write_text(
        '[[profile]]\nname = "Notes"\napps = ["editor"]\nlanguage = "zh"\n'
        'hotwords = ["Kubernetes"]\n',
        encoding="utf-8",
    )
    rig.settings.set(S.HOTWORDS, ["nanodictate"])
    hold(rig, qtbot, 1.0)
    qtbot.waitUntil(lambda: bool(rig.output.delivered), timeout=WAIT_MS)
    assert ("transcribe", "zh", ("nanodictate", "Kubernetes"), True) in rig.engine.calls
    rig.focus.window = WindowInfo(7, "Other", "other", is_terminal=False)
    hold(rig, qtbot, 1.0)
    qtbot.waitUntil(lambda: len(rig.output.delivered) == 2, timeout=WAIT_MS)
    assert ("transcribe", "en", ("nanodictate",), True) in rig.engine.calls


def test_another_speech_model_unloads_and_builds_the_engine_again_fake_engine(
    rig: Rig, qtbot: Any
) -> None:
    hold(rig, qtbot, 1.0)
    qtbot.waitUntil(lambda: bool(rig.output.delivered), timeout=WAIT_MS)
    assert rig.engines_built == 1
    rig.settings.set(S.MODEL, "fun-asr-nano")
    qtbot.waitUntil(lambda: rig.engine.names()[-1] == "unload", timeout=WAIT_MS)
    hold(rig, qtbot, 1.0)
    qtbot.waitUntil(lambda: len(rig.output.delivered) == 2, timeout=WAIT_MS)
    assert rig.engines_built == 2  # the app's factory reads the model folder from the settings
