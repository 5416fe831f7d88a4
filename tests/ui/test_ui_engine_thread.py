"""The engine's QThread keeps one Python thread state for its life.

Regression for the SIGSEGV that lost a long first dictation: the model finished loading in one
request, the transcription came in the next, and kaldi-native-fbank (pybind11) handed CPython
the thread state of the first request, already deleted by PySide6 (pybind11 issue 2888).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from nanodictate.testing.replica import DETERMINISTIC_TEXT

WAIT_MS = 10_000


_LOAD_THEN_TRANSCRIBE = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from PySide6.QtCore import QCoreApplication, QTimer
    from nanodictate.core.asr.engine import Engine
    from nanodictate.testing.speech import speech_with_silence
    from nanodictate.ui.worker import EngineService, LoadRequest, TranscribeRequest

    models, cache = Path(sys.argv[1]), Path(sys.argv[2])
    app = QCoreApplication([])
    service = EngineService(lambda: Engine(
        models / "Fun-ASR-MLT-Nano-2512", vad_dir=models / "fsmn-vad", cache_dir=cache,
        threads=2))
    audio = speech_with_silence("hello world", before=0.5, after=1.0).samples
    outcome = {}
    submitted = []

    def drained():
        # The load's slot has returned, so the transcription is a request of its own, as
        # when the user still speaks when the model is ready.
        if not submitted:
            submitted.append(True)
            service.submit(TranscribeRequest(1, audio, 16000, "en", "int8", "cpu"))

    def done(result):
        outcome["text"] = result.result.text
        app.quit()

    def failed(failure):
        outcome["error"] = repr(failure.error)
        app.quit()

    service.worker.drained.connect(drained)
    service.worker.transcribed.connect(done)
    service.worker.transcribe_failed.connect(failed)
    service.worker.load_failed.connect(failed)
    service.submit(LoadRequest("int8", "cpu"))
    QTimer.singleShot(120_000, app.quit)
    app.exec()
    service.stop()
    print(json.dumps(outcome))
    """
)


def test_model_ready_before_the_first_transcription_does_not_crash(
    models_root: Path, tmp_path: Path
) -> None:
    """The real engine, tiny replica and real FSMN-VAD on the app's engine thread, in a child
    process because the failure this guards against is a segmentation fault."""
    environment = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    finished = subprocess.run(
        [sys.executable, "-c", _LOAD_THEN_TRANSCRIBE, str(models_root), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=180,
        env=environment,
    )
    assert finished.returncode != -signal.SIGSEGV, finished.stderr[-2000:]
    assert finished.returncode == 0, finished.stderr[-2000:]
    outcome = json.loads(finished.stdout.strip().splitlines()[-1])
    assert outcome == {"text": DETERMINISTIC_TEXT}
