"""The engine in its own process: same results, crashes contained, memory given back at unload.

Real parts throughout: the tiny deterministic replica, the real FSMN-VAD, espeak-ng speech, and
real signals sent to the real child process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from nanodictate.core.asr.engine_process import EngineConfig, EngineProcess
from nanodictate.core.errors import EngineCrashedError, ModelMissingError
from nanodictate.core.transcriber import EngineState
from nanodictate.testing.replica import DETERMINISTIC_TEXT
from nanodictate.testing.speech import make_long_recording, speech, speech_with_silence


def _config(models_root: Path, cache_dir: Path) -> EngineConfig:
    return EngineConfig(
        models_root / "Fun-ASR-MLT-Nano-2512",
        vad_dir=models_root / "fsmn-vad",
        cache_dir=cache_dir,
        threads=2,
    )


@pytest.fixture(scope="module")
def hello() -> np.ndarray:
    return speech_with_silence("hello world, this is a test", before=0.5, after=1.0).samples


@pytest.fixture(scope="module")
def long_dictation() -> np.ndarray:
    """Three minutes of sentences and pauses: long enough to kill the child mid-way."""
    sentence = speech("Sentence of a long dictation, with a few more words to say.")
    return make_long_recording([sentence] * 36, [1.5] * 35, lead=1.0, tail=1.0).samples


def _wait_for_exit(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def test_child_transcribes_and_ends_at_unload(
    models_root: Path, tmp_path: Path, hello: np.ndarray
) -> None:
    engine = EngineProcess(_config(models_root, tmp_path))
    states: list[EngineState] = []
    engine.on_state_change = states.append
    try:
        report = engine.load("int8", "cpu")
        pid = engine.pid
        assert pid is not None and pid != os.getpid()
        assert engine.state is EngineState.READY and report.device == "cpu"
        assert engine.transcribe(hello, 16000, language="en").text == DETERMINISTIC_TEXT
        child_rss = engine.memory_report().process_rss
        assert child_rss > 100 << 20  # the child's figure: torch and funasr live there
    finally:
        engine.unload()
    assert _wait_for_exit(pid, 10), "the engine process is still running after unload"
    assert states == [EngineState.LOADING, EngineState.READY, EngineState.UNLOADED]
    assert engine.pid is None and engine.memory_report().process_rss == 0


def test_engine_errors_arrive_typed_and_the_child_lives_on(
    models_root: Path, tmp_path: Path, hello: np.ndarray
) -> None:
    missing = EngineProcess(
        EngineConfig(tmp_path / "no-model", vad_dir=None, cache_dir=tmp_path / "cache")
    )
    try:
        with pytest.raises(ModelMissingError, match="no-model"):
            missing.load("int8", "cpu")
        assert missing.pid is not None, "a user error must not end the engine process"
    finally:
        missing.unload()


def test_child_killed_mid_transcription_raises_and_the_next_call_starts_afresh(
    models_root: Path, tmp_path: Path, hello: np.ndarray, long_dictation: np.ndarray
) -> None:
    engine = EngineProcess(_config(models_root, tmp_path))
    try:
        engine.load("int8", "cpu")
        pid = engine.pid
        assert pid is not None
        outcome: list[BaseException | str] = []

        def transcribe() -> None:
            try:
                outcome.append(engine.transcribe(long_dictation, 16000).text)
            except BaseException as error:
                outcome.append(error)

        child = psutil.Process(pid)
        busy_from = sum(child.cpu_times()[:2])
        worker = threading.Thread(target=transcribe)
        worker.start()
        # Kill it once it is visibly working on the recording.
        while sum(child.cpu_times()[:2]) - busy_from < 0.3 and worker.is_alive():
            time.sleep(0.02)
        assert worker.is_alive(), "the transcription ended before the child could be killed"
        os.kill(pid, signal.SIGKILL)
        worker.join(30)
        assert len(outcome) == 1 and isinstance(outcome[0], EngineCrashedError)
        assert "SIGKILL" in str(outcome[0])
        assert engine.state is EngineState.UNLOADED and engine.pid is None
        # The next load starts a new child, and the same recording is transcribed.
        engine.load("int8", "cpu")
        assert engine.pid not in (None, pid)
        assert engine.transcribe(hello, 16000).text == DETERMINISTIC_TEXT
    finally:
        engine.unload()


_PARENT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from nanodictate.core.asr.engine_process import EngineConfig, EngineProcess
    from nanodictate.testing.speech import speech_with_silence

    models, cache = Path(sys.argv[1]), Path(sys.argv[2])
    engine = EngineProcess(EngineConfig(models / "Fun-ASR-MLT-Nano-2512",
                                        vad_dir=models / "fsmn-vad", cache_dir=cache))
    engine.load("int8", "cpu")
    text = engine.transcribe(speech_with_silence("hello").samples, 16000).text
    heavy = sorted(m for m in ("torch", "funasr", "librosa", "transformers") if m in sys.modules)
    print(json.dumps({"text": text, "heavy": heavy, "child": engine.pid}), flush=True)
    if sys.argv[3] == "wait":
        sys.stdin.read()  # until killed
    engine.unload()
    """
)


def _run_parent(models_root: Path, cache: Path, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _PARENT, str(models_root), str(cache), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def test_the_parent_never_imports_torch_or_funasr(models_root: Path, tmp_path: Path) -> None:
    parent = _run_parent(models_root, tmp_path, "exit")
    out, _ = parent.communicate(timeout=180)
    assert parent.returncode == 0
    result = json.loads(out.strip().splitlines()[-1])
    assert result["text"] == DETERMINISTIC_TEXT
    assert result["heavy"] == []


def test_child_ends_when_the_app_is_killed(models_root: Path, tmp_path: Path) -> None:
    parent = _run_parent(models_root, tmp_path, "wait")
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()
        child = json.loads(line)["child"]
        assert psutil.pid_exists(child)
        parent.kill()  # SIGKILL: no clean-up code of ours runs in the parent
        parent.wait(10)
        assert _wait_for_exit(child, 15), "the engine process outlived the app"
    finally:
        if parent.poll() is None:
            parent.kill()
        parent.communicate()
