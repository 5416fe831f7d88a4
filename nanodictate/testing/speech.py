"""Real speech for tests and benchmarks, made offline with espeak-ng.

Synthetic speech is not human speech, but it is real enough for a VAD and an ASR model to
detect and transcribe, it is deterministic, and it needs no recorded data set in the repository.
Everything here returns float32 mono samples at 16 kHz, the models' format.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from nanodictate.core.audio_input import SAMPLE_RATE, prepare_audio

__all__ = [
    "Recording",
    "make_long_recording",
    "noise",
    "silence",
    "speak",
    "speech",
    "speech_with_silence",
    "voiced_span",
]

Samples = npt.NDArray[np.float32]

# espeak-ng's output is clean: its own lead-in/trail silence is digital zero, and its quietest
# voiced sounds are far above this, so this threshold finds where the voice really is.
_VOICED_THRESHOLD = 0.005


@dataclass(frozen=True)
class Recording:
    """Samples plus where the speech in them is, as [start, end) sample ranges."""

    samples: Samples
    speech: list[tuple[int, int]] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def speak(text: str, out_wav: Path, *, voice: str = "en", speed: int = 150) -> Path:
    """Write `text` spoken by espeak-ng to `out_wav` (16-bit mono WAV at espeak's 22050 Hz)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
    out_wav.parent.mkdir(parents=True, exist_ok=True)
    # "--" so that a text starting with "-" is spoken, not parsed as an option.
    subprocess.run(
        [exe, "-v", voice, "-s", str(speed), "-w", str(out_wav), "--", text],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return out_wav


def speech(text: str, *, voice: str = "en", speed: int = 150) -> Samples:
    """`text` spoken by espeak-ng, as 16 kHz samples (read back through prepare_audio)."""
    with tempfile.TemporaryDirectory(prefix="nanodictate-speech-") as tmp:
        wav = speak(text, Path(tmp) / "speech.wav", voice=voice, speed=speed)
        return prepare_audio(wav)


def silence(seconds: float) -> Samples:
    """Digital silence."""
    return np.zeros(_samples(seconds), dtype=np.float32)


def noise(seconds: float, level: float, *, seed: int = 0) -> Samples:
    """White Gaussian noise with RMS `level` (0.01 ≈ -40 dBFS, a quiet room's hiss)."""
    return _noise(_samples(seconds), level, seed)


def voiced_span(samples: Samples, threshold: float = _VOICED_THRESHOLD) -> tuple[int, int]:
    """[first, last + 1) of the samples louder than `threshold`; (0, 0) if there are none."""
    loud = np.flatnonzero(np.abs(samples) > threshold)
    if loud.size == 0:
        return (0, 0)
    return (int(loud[0]), int(loud[-1]) + 1)


def speech_with_silence(
    text: str,
    *,
    before: float = 2.0,
    after: float = 2.0,
    voice: str = "en",
    speed: int = 150,
) -> Recording:
    """`text` spoken with `before`/`after` seconds of silence around it."""
    return make_long_recording(
        [speech(text, voice=voice, speed=speed)], [], lead=before, tail=after
    )


def make_long_recording(
    parts: Sequence[Samples],
    pauses: Sequence[float],
    *,
    lead: float = 0.0,
    tail: float = 0.0,
    background: float = 0.0,
) -> Recording:
    """Concatenate `parts` with `pauses[i]` seconds of silence between part i and part i + 1.

    `speech` in the result holds each part's voiced span (see voiced_span), offset to where the
    part sits. `background` adds white noise of that RMS level over the whole recording, so the
    pauses are a quiet room instead of digital silence.
    """
    if len(pauses) != max(len(parts) - 1, 0):
        raise ValueError(f"{len(parts)} parts need {max(len(parts) - 1, 0)} pauses")
    pieces: list[Samples] = [silence(lead)]
    spans: list[tuple[int, int]] = []
    offset = len(pieces[0])
    for index, part in enumerate(parts):
        start, end = voiced_span(part)
        if end > start:
            spans.append((offset + start, offset + end))
        pieces.append(part)
        offset += len(part)
        if index < len(pauses):
            pieces.append(silence(pauses[index]))
            offset += len(pieces[-1])
    pieces.append(silence(tail))
    samples = np.concatenate(pieces).astype(np.float32)
    if background > 0:
        samples = np.clip(samples + _noise(len(samples), background, seed=0), -1.0, 1.0)
    return Recording(np.ascontiguousarray(samples, dtype=np.float32), spans)


def _noise(count: int, level: float, seed: int) -> Samples:
    values = np.random.default_rng(seed).standard_normal(count) * level
    return np.clip(values, -1.0, 1.0).astype(np.float32)


def _samples(seconds: float) -> int:
    if seconds < 0:
        raise ValueError(f"seconds must not be negative, got {seconds}")
    return round(seconds * SAMPLE_RATE)
