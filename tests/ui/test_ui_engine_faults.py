"""Faults of the engine's process, with the real parts: the engine worker thread driving the real
engine process on the tiny replica with the real FSMN-VAD, and real signals to that process."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from controller_rig import WAIT_MS, Rig, hold
from ui_fakes import FakeHotkeys

from nanodictate.core.asr.engine import join_texts
from nanodictate.core.asr.engine_process import EngineConfig, EngineProcess
from nanodictate.testing.replica import DETERMINISTIC_TEXT
from nanodictate.testing.speech import make_long_recording, speech
from nanodictate.ui.worker import EngineService, Failure, TranscribeDone, TranscribeRequest

LOAD_MS = 120_000  # a child process imports torch and funasr: seconds on 2 busy cores


def _engine(models_root: Path, cache: Path) -> EngineProcess:
    return EngineProcess(
        EngineConfig(
            models_root / "Fun-ASR-MLT-Nano-2512",
            vad_dir=models_root / "fsmn-vad",
            cache_dir=cache,
            threads=2,
        )
    )


def test_engine_killed_mid_transcription_is_restarted_and_the_recording_transcribed(
    qtbot: Any, models_root: Path, tmp_path: Path
) -> None:
    sentence = speech("Sentence of a long dictation, with a few more words to say.")
    audio = make_long_recording([sentence] * 24, [1.5] * 23, lead=1.0, tail=1.0).samples
    engine = _engine(models_root, tmp_path)
    service = EngineService(lambda: engine)
    restarts: list[Failure] = []
    service.worker.engine_restarting.connect(restarts.append)
    try:
        with qtbot.waitSignal(service.worker.transcribed, timeout=LOAD_MS * 2) as done:
            service.submit(TranscribeRequest(7, audio, 16000, "en", "int8", "cpu"))
            qtbot.waitUntil(lambda: engine.state.value == "ready", timeout=LOAD_MS)
            pid = engine.pid
            assert pid is not None
            child = psutil.Process(pid)
            busy_from = sum(child.cpu_times()[:2])
            # Killed once it is visibly working on this recording.
            qtbot.waitUntil(lambda: sum(child.cpu_times()[:2]) - busy_from > 0.3, timeout=WAIT_MS)
            os.kill(pid, signal.SIGKILL)
        result: TranscribeDone = done.args[0]
        restarted_pid = engine.pid
    finally:
        service.stop(timeout_ms=30_000)
    assert len(restarts) == 1 and "SIGKILL" in str(restarts[0].error)
    assert result.job_id == 7
    texts = [segment.text for segment in result.result.segments]
    assert len(texts) >= 2 and set(texts) == {DETERMINISTIC_TEXT}
    assert result.result.text == join_texts(texts)
    assert restarted_pid not in (None, pid)


def test_model_deleted_while_the_app_runs_is_named_and_the_recording_kept(
    qtbot: Any, models_root: Path, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    shutil.copytree(models_root, models)
    engine = _engine(models, tmp_path / "cache")
    rig = Rig(tmp_path, engine, FakeHotkeys())  # type: ignore[arg-type]
    try:
        (models / "Fun-ASR-MLT-Nano-2512" / "model.pt").unlink()
        hold(rig, qtbot, 1.0)
        # The key-down preload fails first; then the dictation's own load, which is told
        # with its recording kept.
        qtbot.waitUntil(
            lambda: "recording is kept" in (rig.controller.error or ""), timeout=LOAD_MS
        )
        assert "model.pt" in (rig.controller.error or "")
        kept = list(rig.spool.folder.glob("*.wav"))
        assert len(kept) == 1
        assert not rig.output.delivered and len(rig.history) == 0
    finally:
        rig.close(engine_stop_ms=30_000)


@pytest.fixture(autouse=True)
def _no_leftover_engine_processes() -> Any:
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    yield
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        left = {p.pid for p in psutil.Process().children(recursive=True)} - before
        if not left or all(
            psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
            for pid in left
            if psutil.pid_exists(pid)
        ):
            return
        time.sleep(0.1)
    raise AssertionError(f"engine processes left running: {sorted(left)}")
