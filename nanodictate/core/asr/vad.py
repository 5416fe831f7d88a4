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

import itertools
import logging
import math
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

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

Segment = tuple[int, int]
"""[start, end) in samples at 16 kHz."""

VAD_MODEL_FILES = ("model.pt", "config.yaml", "configuration.json", "am.mvn")
"""What a funasr-format FSMN-VAD folder must hold; configuration.json keeps funasr off the hub."""

# The quietest 100 ms decides where a segment longer than a chunk is cut: a breath or a pause
# between words, so that no word is cut in two where one can be avoided.
_QUIET_WINDOW_SECONDS = 0.1
# How far from the ideal (equal-length) cut point to look for that quiet spot.
_SPLIT_SEARCH_SECONDS = 2.0


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


def plan_chunks(
    segments: Sequence[Segment],
    total_samples: int,
    *,
    audio: npt.NDArray[np.float32] | None = None,
    max_chunk_seconds: float = 20.0,
    pad_seconds: float = 0.2,
    merge_gap_seconds: float = 1.0,
    sample_rate: int = SAMPLE_RATE,
) -> list[Segment]:
    """Turn speech segments into the [start, end) pieces of the recording to transcribe.

    1. Segments are clamped to [0, total_samples), sorted, and overlapping ones united.
    2. Each is padded by `pad_seconds` on both sides (the VAD cuts close to the voice and the
       model needs the onset of the first word), never past the audio or past the middle of
       the gap to its neighbour.
    3. A padded segment longer than `max_chunk_seconds` is split into near-equal pieces, each
       cut moved (by up to 2 s) to the quietest 100 ms nearby when `audio` is given.
    4. Neighbours at most `merge_gap_seconds` apart are joined while the result stays within
       `max_chunk_seconds`: fewer, longer pieces give the model more context per call, while
       long pauses are left out so the model never transcribes long silence.

    The result is ordered and non-overlapping, every piece lasts at most `max_chunk_seconds`,
    together the pieces cover every sample of every segment, and silence before the first and
    after the last segment (beyond the padding) is left out. No segments give [].
    """
    if max_chunk_seconds <= 0 or not math.isfinite(max_chunk_seconds):
        raise ValueError(f"max_chunk_seconds must be positive, got {max_chunk_seconds}")
    if pad_seconds < 0 or merge_gap_seconds < 0:
        raise ValueError("pad_seconds and merge_gap_seconds must not be negative")
    if audio is not None and len(audio) != total_samples:
        raise ValueError(f"audio has {len(audio)} samples but total_samples is {total_samples}")
    max_len = max(int(max_chunk_seconds * sample_rate), 1)
    pad = round(pad_seconds * sample_rate)
    merge_gap = round(merge_gap_seconds * sample_rate)

    speech = _union(segments, total_samples)
    padded = _pad(speech, pad, total_samples)
    pieces: list[Segment] = []
    for (start, end), (voice_start, voice_end) in zip(padded, speech, strict=True):
        if end - start <= max_len:
            pieces.append((start, end))
            continue
        for piece_start, piece_end in _split(start, end, max_len, audio, sample_rate):
            # With padding long compared with the chunk limit, a piece can be all padding;
            # silence alone must never reach the model (it hallucinates on it).
            if piece_start < voice_end and piece_end > voice_start:
                pieces.append((piece_start, piece_end))
    return _merge(pieces, max_len, merge_gap)


def _union(segments: Sequence[Segment], total: int) -> list[Segment]:
    clamped = sorted(
        (max(int(start), 0), min(int(end), total))
        for start, end in segments
        if min(int(end), total) > max(int(start), 0)
    )
    united: list[Segment] = []
    for start, end in clamped:
        if united and start <= united[-1][1]:
            united[-1] = (united[-1][0], max(united[-1][1], end))
        else:
            united.append((start, end))
    return united


def _pad(speech: list[Segment], pad: int, total: int) -> list[Segment]:
    padded: list[Segment] = []
    for index, (start, end) in enumerate(speech):
        # Padding stops at the middle of the gap, so padded neighbours never overlap and each
        # keeps its own speech whole.
        low = (speech[index - 1][1] + start) // 2 if index > 0 else 0
        high = (end + speech[index + 1][0]) // 2 if index + 1 < len(speech) else total
        padded.append((max(start - pad, low), min(end + pad, high)))
    return padded


def _split(
    start: int, end: int, max_len: int, audio: npt.NDArray[np.float32] | None, sample_rate: int
) -> list[Segment]:
    length = end - start
    search = round(_SPLIT_SEARCH_SECONDS * sample_rate)
    # Aim a little below max_len so each cut has room to move to a quiet spot; without the
    # slack, a segment of exactly 2 × max_len could only be cut at its exact middle.
    slack = min(search, max_len // 8)
    count = max(math.ceil(length / max(max_len - 2 * slack, 1)), 2)
    ideal = [start + (length * i) // count for i in range(count + 1)]
    longest = max(b - a for a, b in itertools.pairwise(ideal))
    # Each cut moves by at most `reach`, so a piece grows by at most 2 × reach: still within
    # max_len. The quarter-piece cap keeps consecutive cuts in order.
    reach = max(min(search, (max_len - longest) // 2, longest // 4), 0)
    cuts = [start]
    for point in ideal[1:-1]:
        cut = point
        if audio is not None and reach > 0:
            cut = _quietest_point(audio, point, reach, sample_rate)
        cuts.append(cut)
    cuts.append(end)
    return list(itertools.pairwise(cuts))


def _quietest_point(
    audio: npt.NDArray[np.float32], point: int, reach: int, sample_rate: int
) -> int:
    """The centre of the quietest window in [point - reach, point + reach]; nearest wins ties."""
    half = max(round(_QUIET_WINDOW_SECONDS * sample_rate) // 2, 1)
    low = max(point - reach, half)
    high = min(point + reach, len(audio) - half)
    if high <= low:
        return point
    region = audio[low - half : high + half].astype(np.float64)
    energy = np.concatenate(([0.0], np.cumsum(region * region)))
    window = energy[2 * half :] - energy[: -2 * half]  # window[k] is centred on low + k
    quietest = float(window.min())
    candidates = np.flatnonzero(window <= quietest + 1e-9) + low
    return int(candidates[np.argmin(np.abs(candidates - point))])


def _merge(pieces: list[Segment], max_len: int, merge_gap: int) -> list[Segment]:
    chunks: list[Segment] = []
    for start, end in pieces:
        if chunks:
            first, last = chunks[-1]
            if start - last <= merge_gap and end - first <= max_len:
                chunks[-1] = (first, end)
                continue
        chunks.append((start, end))
    return chunks
