"""Speech detection and chunking: where in a recording is someone speaking, and how to cut it.

Two reasons the engine never gives Fun-ASR-MLT-Nano a whole recording:
- on silence the model hallucinates ("嗯。", "I am not sure."), so silence must never reach it;
- its LLM decoder loops on segments longer than ≈15–30 s, so long dictation is transcribed in
  pieces of at most `max_chunk_seconds`.

`SpeechDetector` runs the FSMN-VAD model (funasr format, 3.5 MB, loads in tens of ms);
`plan_chunks` turns its speech segments into the pieces to transcribe. `plan_chunks` is a pure
function so its guarantees (pieces are ordered, disjoint, short enough and cover all speech)
can be tested without a model.

Importing this module imports neither torch nor funasr: `import funasr` alone costs ≈4.5 s and
≈0.5 GB, so it happens in `SpeechDetector.load`, on the engine's worker thread.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from nanodictate.core.asr.chunks import Segment as Segment
from nanodictate.core.asr.chunks import plan_chunks as plan_chunks
from nanodictate.core.asr.funasr_runtime import import_funasr, quiet, torch_threads_kept
from nanodictate.core.audio_input import SAMPLE_RATE
from nanodictate.core.errors import EngineStateError, ModelCorruptError, ModelMissingError

__all__ = [
    "VAD_MODEL_FILES",
    "Segment",
    "SpeechDetector",
    "plan_chunks",
]

log = logging.getLogger(__name__)


VAD_MODEL_FILES = ("model.pt", "config.yaml", "configuration.json", "am.mvn")
"""What a funasr-format FSMN-VAD folder must hold; configuration.json keeps funasr off the hub."""


class SpeechDetector:
    """The FSMN-VAD model: finds the stretches of a recording that contain speech.

    A lock serialises load, unload and detection, so a detector may be shared between threads;
    the engine keeps it on its worker thread anyway, where funasr is imported.
    """

    def __init__(self, model_dir: Path, *, threads: int = 1) -> None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        self.model_dir = Path(model_dir)
        self.threads = threads
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def is_loaded(self) -> bool:
        return self._model is not None

    def load(self) -> None:
        """Load the model (idempotent). The first load in a process also imports funasr (≈4.5 s).

        Raises ModelMissingError if the folder or one of its files is missing, ModelCorruptError
        if funasr cannot build the model from it.
        """
        with self._lock:
            if self._model is not None:
                return
            model_dir = self.model_dir.resolve()
            if not model_dir.is_dir():
                raise ModelMissingError(
                    f"The speech-detection model folder {model_dir} is missing."
                )
            missing = [name for name in VAD_MODEL_FILES if not (model_dir / name).is_file()]
            if missing:
                raise ModelMissingError(
                    f"The speech-detection model in {model_dir} is incomplete: "
                    f"{', '.join(missing)} missing."
                )
            # import_funasr sets offline mode: an absolute local path never reaches a hub,
            # but funasr's helpers may still try to look something up.
            funasr = import_funasr()
            with quiet(), torch_threads_kept():
                try:
                    model = funasr.AutoModel(
                        model=str(model_dir),
                        device="cpu",  # a 0.4 M-parameter model gains nothing from a GPU
                        disable_update=True,  # else a PyPI request without a timeout
                        disable_pbar=True,
                        ncpu=self.threads,
                        log_level="WARNING",
                    )
                except Exception as error:
                    raise ModelCorruptError(
                        f"The speech-detection model in {model_dir} could not be loaded; its "
                        f"files are damaged or from another model. Download it again. "
                        f"({_first_line(error)})"
                    ) from error
                _check_weights(model, model_dir / "model.pt")
            self._model = model
            log.info("speech detector loaded from %s", model_dir)

    def unload(self) -> None:
        """Drop the model; `load` brings it back."""
        with self._lock:
            self._model = None

    def speech_segments(self, audio: npt.NDArray[np.float32]) -> list[Segment]:
        """[start, end) sample ranges of speech in `audio` (mono float32 at 16 kHz), in order.

        Silence and steady background noise give []. Speech that runs to the very end of the
        audio still gets a closed final segment.
        """
        samples = np.ascontiguousarray(audio, dtype=np.float32)
        if samples.ndim != 1:
            raise ValueError(f"audio must be mono (1-D), got shape {samples.shape}")
        with self._lock:
            model = self._model
            if model is None:
                raise EngineStateError("The speech detector is not loaded yet.")
            if samples.size == 0:
                return []
            with quiet(), torch_threads_kept():
                result = model.generate(input=samples, disable_pbar=True)
        return _segments_from_result(result, len(samples))


def _check_weights(model: Any, checkpoint_path: Path) -> None:
    """Refuse a model whose checkpoint does not fill every parameter.

    funasr loads checkpoints leniently: a missing or misshapen tensor is skipped with a print,
    leaving random weights that would "detect" speech at random. The file is 1.7 MB, so
    reading it once more costs a few milliseconds.
    """
    from nanodictate.core.asr.weights import open_checkpoint

    # Unwraps and strips "module." as funasr does; an unreadable file is a ModelCorruptError.
    stored = open_checkpoint(checkpoint_path)
    expected = model.model.state_dict()
    wrong = [
        key
        for key, tensor in expected.items()
        if key not in stored or tuple(getattr(stored[key], "shape", (-1,))) != tuple(tensor.shape)
    ]
    if wrong:
        raise ModelCorruptError(
            f"The speech-detection model file {checkpoint_path} does not match its config: "
            f"{len(wrong)} of {len(expected)} weights are missing or misshapen "
            f"(first: {wrong[0]}). Download the model again."
        )


def _first_line(error: BaseException, limit: int = 160) -> str:
    """The gist of a library's exception for a user message; the traceback goes to the log."""
    lines = str(error).strip().splitlines()
    text = lines[0] if lines else type(error).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _segments_from_result(result: Any, total: int) -> list[Segment]:
    """funasr gives [{"key", "value": [[start_ms, end_ms], ...]}]; convert to sample ranges."""
    per_ms = SAMPLE_RATE // 1000
    segments: list[Segment] = []
    for item in result or []:
        for start_ms, end_ms in item.get("value", []):
            # A streaming-only "still open" marker is -1; a whole-input call closes every
            # segment, but clamp anyway so a surprise can never index outside the audio.
            start = min(max(int(start_ms) * per_ms, 0), total)
            end = total if int(end_ms) < 0 else min(int(end_ms) * per_ms, total)
            if end > start:
                segments.append((start, end))
    segments.sort()
    return segments
