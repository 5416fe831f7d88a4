"""Audio in: turn whatever the microphone or a file gives us into what the models expect.

Both models (FSMN-VAD and Fun-ASR-MLT-Nano) want float32 mono samples at 16 kHz in [-1, 1].
Everything that can go wrong with input audio is caught here, with a message the user can act
on, so the engine never feeds a model something that makes it crash or hallucinate.

Only numpy is imported at module level: soundfile, soxr and librosa are imported inside the
functions that need them, so that importing the core stays fast (the app starts in the tray
before any model work happens).
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from nanodictate.core.errors import AudioInputError

__all__ = [
    "DEFAULT_MAX_SECONDS",
    "MAX_CHANNELS",
    "SAMPLE_RATE",
    "AudioSamples",
    "audio_seconds",
    "prepare_audio",
]

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
"""The rate both models were trained on."""

MAX_CHANNELS = 8
"""More channels than this means the array's layout is not (samples, channels) at all."""

DEFAULT_MAX_SECONDS = 3 * 3600.0
"""Three hours: far beyond dictation, yet still fits in memory (≈ 0.7 GB at 16 kHz float32)."""

# Up to this fraction of NaN/Inf samples is treated as a few dropped samples from a driver or
# decoder glitch and silenced; more than that means the data is garbage, not audio.
_MAX_BAD_FRACTION = 0.01

AudioSamples = npt.NDArray[np.float32]
"""Mono float32 samples at 16 kHz in [-1, 1], C-contiguous."""


def audio_seconds(samples: npt.NDArray[Any], sample_rate: int = SAMPLE_RATE) -> float:
    """Duration of `samples` (first axis) in seconds."""
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    return samples.shape[0] / sample_rate if samples.ndim else 0.0


def prepare_audio(
    source: npt.NDArray[Any] | str | os.PathLike[str],
    sample_rate: int | None = None,
    *,
    max_seconds: float = DEFAULT_MAX_SECONDS,
) -> AudioSamples:
    """Return `source` as float32 mono 16 kHz samples in [-1, 1] (a new, contiguous array).

    `source` is either an array of samples or the path of an audio file (wav, flac, ogg, mp3
    and whatever else libsndfile reads; other formats through librosa/audioread when a decoder
    such as ffmpeg is installed).

    Arrays: float of any width, or integer PCM (int16, int32, uint8, …, scaled to full range).
    Shape (n,), (n, channels) or (channels, n): the short axis (at most 8) holds the channels,
    which are averaged. `sample_rate` is required for arrays. For files it must be None: the
    file's header states its rate.

    Raises AudioInputError (message for the user) for empty, damaged, unreadable or absurdly
    long audio. Short audio is fine: the VAD just finds no speech in it.
    """
    if max_seconds <= 0:
        raise ValueError(f"max_seconds must be positive, got {max_seconds}")
    if isinstance(source, np.ndarray):
        rate = _check_rate(sample_rate)
        samples, channel_axis = _guess_layout(source)
        return _to_model_format(samples, rate, channel_axis, max_seconds, what="The recording")
    if isinstance(source, (str, os.PathLike)):
        if sample_rate is not None:
            # A caller passing a rate with a file has mixed up two code paths; the header's
            # rate is the truth, so refuse instead of silently preferring one.
            raise ValueError("sample_rate must be None for files: the file states its own rate")
        return _prepare_file(Path(source), max_seconds)
    raise TypeError(f"expected a numpy array or a file path, got {type(source).__name__}")


def _check_rate(sample_rate: int | None) -> int:
    if sample_rate is None:
        raise AudioInputError(
            "The recording has no sample rate, so it cannot be played back at the right speed."
        )
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)):
        raise AudioInputError(f"The recording's sample rate ({sample_rate!r}) is not a number.")
    if sample_rate <= 0:
        raise AudioInputError(f"The recording's sample rate ({sample_rate} Hz) is not valid.")
    return int(sample_rate)


def _guess_layout(samples: npt.NDArray[Any]) -> tuple[npt.NDArray[Any], int | None]:
    """Return the array and the axis that holds channels (None for mono)."""
    if samples.ndim == 1:
        return samples, None
    if samples.ndim != 2:
        raise AudioInputError(
            f"The recording has an unexpected shape {samples.shape}: "
            "expected samples, or samples × channels."
        )
    rows, cols = samples.shape
    # sounddevice and soundfile give (frames, channels); some libraries (librosa, torchaudio)
    # give (channels, frames). Real audio has far more frames than channels, so the short axis
    # is the channel axis; on a tie (a recording of a few samples) the common (frames,
    # channels) convention decides.
    if cols <= MAX_CHANNELS and (cols <= rows or rows > MAX_CHANNELS):
        return samples, 1
    if rows <= MAX_CHANNELS:
        return samples, 0
    raise AudioInputError(
        f"The recording has an unexpected shape {samples.shape}: "
        f"neither axis looks like channels (at most {MAX_CHANNELS})."
    )


def _to_float32(samples: npt.NDArray[Any], what: str) -> npt.NDArray[np.float32]:
    """Convert to float32 in a new array, scaling integer PCM to [-1, 1)."""
    kind = samples.dtype.kind
    if kind == "f":
        return np.array(samples, dtype=np.float32, copy=True)
    if kind in "iu":
        bits = np.iinfo(samples.dtype).bits
        # Integer PCM is full scale at 2**(bits-1); unsigned PCM (uint8 WAV) is offset by half
        # its range. float32 holds up to 24-bit integers exactly; wider ones go through float64
        # so the offset is applied before rounding (and 16-bit audio avoids a 4× copy).
        work: npt.NDArray[np.floating[Any]] = samples.astype(
            np.float32 if bits <= 24 else np.float64
        )
        half = float(2 ** (bits - 1))
        if kind == "u":
            np.subtract(work, half, out=work)
        np.divide(work, half, out=work)
        return work.astype(np.float32, copy=False)
    raise AudioInputError(f"{what} holds {samples.dtype} values, which are not audio samples.")


def _to_model_format(
    samples: npt.NDArray[Any],
    sample_rate: int,
    channel_axis: int | None,
    max_seconds: float,
    *,
    what: str,
) -> AudioSamples:
    frames = samples.shape[0 if channel_axis != 0 else 1] if samples.ndim else 0
    if samples.size == 0 or frames == 0:
        raise AudioInputError(f"{what} is empty: no sound was captured.")
    seconds = frames / sample_rate
    # Checked before any conversion or resampling, which would allocate several copies of
    # something that is too long anyway (or a wrong rate that makes it look enormous).
    if seconds > max_seconds:
        raise AudioInputError(_too_long_message(what, seconds, max_seconds))

    audio = _to_float32(samples, what)
    _repair_non_finite(audio, what)
    if channel_axis is not None:
        audio = audio.mean(axis=channel_axis, dtype=np.float32)

    if sample_rate != SAMPLE_RATE:
        import soxr  # librosa's "soxr_hq" is this very call; librosa's first use costs ≈1 s

        audio = np.asarray(
            soxr.resample(audio, sample_rate, SAMPLE_RATE, quality="HQ"), dtype=np.float32
        )

    # Hot float input, and resampling's overshoot near full scale, go past ±1; the models were
    # trained on clipped PCM, so clip rather than rescale (rescaling would make a loud
    # recording quieter as a whole because of a few peaks).
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > 1.0:
        log.debug("%s peaks at %.3f; clipping to [-1, 1]", what, peak)
        np.clip(audio, -1.0, 1.0, out=audio)
    return np.ascontiguousarray(audio, dtype=np.float32)


def _too_long_message(what: str, seconds: float, max_seconds: float) -> str:
    return (
        f"{what} is {_minutes(seconds)} long; "
        f"the longest that can be transcribed is {_minutes(max_seconds)}."
    )


def _minutes(seconds: float) -> str:
    """A length the way a person says it: "2.5 minutes", "95 minutes", "40 seconds"."""
    if seconds < 60:
        return "1 second" if round(seconds) == 1 else f"{seconds:.0f} seconds"
    minutes = seconds / 60
    return f"{minutes:.0f} minutes" if minutes >= 10 else f"{minutes:.1f} minutes"


def _repair_non_finite(audio: npt.NDArray[np.float32], what: str) -> None:
    """Silence a few NaN/Inf samples in place; refuse audio that is mostly garbage."""
    bad = ~np.isfinite(audio)
    count = int(np.count_nonzero(bad))
    if count == 0:
        return
    fraction = count / audio.size
    if fraction >= _MAX_BAD_FRACTION:
        raise AudioInputError(
            f"{what} is damaged: {fraction:.0%} of its samples are not numbers. "
            "Check the microphone or the file."
        )
    log.warning("%s had %d invalid samples (NaN/Inf); replaced them with silence", what, count)
    audio[bad] = 0.0


def _prepare_file(path: Path, max_seconds: float) -> AudioSamples:
    name = str(path)
    if not path.exists():
        raise AudioInputError(f"The audio file {name} does not exist.")
    if path.is_dir():
        raise AudioInputError(f"{name} is a folder, not an audio file.")
    if not os.access(path, os.R_OK):
        raise AudioInputError(f"The audio file {name} cannot be read (permission denied).")

    try:
        samples, rate = _read_with_soundfile(path, max_seconds)
    except AudioInputError:
        raise
    except Exception as sf_error:  # libsndfile raises its own error type and RuntimeError
        log.debug("soundfile cannot read %s (%s); trying librosa/audioread", name, sf_error)
        try:
            samples, rate = _read_with_librosa(path)
        except Exception as fallback_error:
            log.debug("librosa/audioread cannot read %s either: %s", name, fallback_error)
            raise AudioInputError(
                f"{name} could not be read as audio: it is damaged or not an audio file, or "
                "its format needs a decoder that is not installed (try WAV, FLAC, OGG or MP3)."
            ) from fallback_error
    if rate <= 0:
        raise AudioInputError(f"The audio file {name} states an invalid sample rate ({rate}).")
    # Both readers return (frames, channels), so the layout is known, not guessed.
    return _to_model_format(samples, rate, 1, max_seconds, what=f"The audio file {name}")


def _read_with_soundfile(path: Path, max_seconds: float) -> tuple[npt.NDArray[Any], int]:
    import soundfile

    info = soundfile.info(str(path))
    # Refuse before decoding: a 10-hour file would otherwise be read into memory first.
    if info.samplerate > 0 and info.frames / info.samplerate > max_seconds:
        seconds = info.frames / info.samplerate
        raise AudioInputError(_too_long_message(f"The audio file {path}", seconds, max_seconds))
    data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return np.asarray(data), int(rate)


def _read_with_librosa(path: Path) -> tuple[npt.NDArray[Any], int]:
    import librosa

    with warnings.catch_warnings():
        # librosa warns that audioread is deprecated each time it falls back to it; that is
        # exactly the fallback we want here, for formats libsndfile does not know.
        warnings.simplefilter("ignore")
        data, rate = librosa.load(str(path), sr=None, mono=False, dtype=np.float32)
    array = np.asarray(data)
    # librosa gives (channels, frames) for multichannel audio; turn it into (frames, channels).
    array = array[:, np.newaxis] if array.ndim == 1 else array.T
    if not math.isfinite(float(rate)):
        raise ValueError(f"invalid sample rate {rate!r}")
    return array, int(rate)
