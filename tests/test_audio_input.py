"""prepare_audio: every shape, type and file the app may be given becomes 16 kHz mono float32."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from nanodictate.core.audio_input import (
    SAMPLE_RATE,
    _read_with_librosa,
    audio_seconds,
    prepare_audio,
)
from nanodictate.core.errors import AudioInputError
from nanodictate.testing.speech import speak


def tone(seconds: float, rate: int, freq: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float64)


def assert_model_format(audio: np.ndarray) -> None:
    assert audio.dtype == np.float32
    assert audio.ndim == 1
    assert audio.flags["C_CONTIGUOUS"]
    assert np.all(np.isfinite(audio))
    assert float(np.max(np.abs(audio))) <= 1.0


# --- arrays ----------------------------------------------------------------------------------


def test_stereo_int16_44k_becomes_mono_float32_16k() -> None:
    rate = 44100
    left = tone(2.0, rate, amplitude=0.5)
    stereo = np.stack([left, np.zeros_like(left)], axis=1)  # (frames, channels)
    pcm = np.round(stereo * 32767).astype(np.int16)

    audio = prepare_audio(pcm, rate)

    assert_model_format(audio)
    assert abs(len(audio) - 2.0 * SAMPLE_RATE) <= 1
    # Mixing halves a tone present in one channel only; the middle avoids resampling's edges.
    middle = audio[SAMPLE_RATE // 2 : -SAMPLE_RATE // 2]
    assert np.max(np.abs(middle)) == pytest.approx(0.25, abs=0.01)
    expected = tone(len(audio) / SAMPLE_RATE, SAMPLE_RATE, amplitude=0.25)[: len(audio)]
    assert np.max(np.abs(audio - expected)[SAMPLE_RATE // 2 : -SAMPLE_RATE // 2]) < 0.01


def test_channels_first_layout_gives_the_same_result() -> None:
    rate = 48000
    frames_first = np.stack([tone(1.0, rate), tone(1.0, rate, freq=300.0)], axis=1)
    a = prepare_audio(frames_first, rate)
    b = prepare_audio(np.ascontiguousarray(frames_first.T), rate)
    assert_model_format(b)
    np.testing.assert_array_equal(a, b)


def test_16k_mono_float32_is_passed_through_as_a_copy() -> None:
    source = tone(0.5, SAMPLE_RATE).astype(np.float32)
    audio = prepare_audio(source, SAMPLE_RATE)
    np.testing.assert_array_equal(audio, source)
    assert audio is not source and not np.shares_memory(audio, source)


@pytest.mark.parametrize(
    ("values", "dtype", "expected"),
    [
        ([-32768, 0, 16384, 32767], np.int16, [-1.0, 0.0, 0.5, 32767 / 32768]),
        ([-(2**31), 0, 2**30], np.int32, [-1.0, 0.0, 0.5]),
        ([0, 128, 192, 255], np.uint8, [-1.0, 0.0, 0.5, 127 / 128]),
        ([-0.5, 0.25], np.float64, [-0.5, 0.25]),
        ([-0.5, 0.25], np.float16, [-0.5, 0.25]),
    ],
)
def test_sample_types_are_scaled_to_unit_range(
    values: list[float], dtype: type, expected: list[float]
) -> None:
    audio = prepare_audio(np.array(values, dtype=dtype), SAMPLE_RATE)
    assert audio.dtype == np.float32
    np.testing.assert_allclose(audio, expected, atol=1e-6)


def test_short_audio_is_fine() -> None:
    audio = prepare_audio(np.zeros(10, dtype=np.float32), SAMPLE_RATE)
    assert len(audio) == 10


@pytest.mark.parametrize("shape", [(0,), (0, 2), (2, 0)])
def test_empty_recording_is_refused(shape: tuple[int, ...]) -> None:
    with pytest.raises(AudioInputError, match="The recording is empty"):
        prepare_audio(np.zeros(shape, dtype=np.float32), SAMPLE_RATE)


@pytest.mark.parametrize("rate", [None, 0, -16000])
def test_missing_or_invalid_sample_rate_is_refused(rate: int | None) -> None:
    with pytest.raises(AudioInputError, match="sample rate"):
        prepare_audio(np.zeros(100, dtype=np.float32), rate)


@pytest.mark.parametrize(
    "array",
    [
        np.zeros((2, 3, 100), dtype=np.float32),
        np.zeros((50, 60), dtype=np.float32),
        np.zeros((), dtype=np.float32),
    ],
    ids=["3-D", "no-channel-axis", "scalar"],
)
def test_shapes_that_are_not_audio_are_refused(array: np.ndarray) -> None:
    with pytest.raises(AudioInputError, match="shape"):
        prepare_audio(array, SAMPLE_RATE)


@pytest.mark.parametrize("dtype", [np.bool_, np.complex64, object])
def test_values_that_are_not_samples_are_refused(dtype: type) -> None:
    with pytest.raises(AudioInputError, match="not audio samples"):
        prepare_audio(np.zeros(100, dtype=dtype), SAMPLE_RATE)


def test_mostly_nan_is_refused() -> None:
    audio = np.full(16000, np.nan, dtype=np.float32)
    audio[:100] = 0.1
    with pytest.raises(AudioInputError, match="damaged"):
        prepare_audio(audio, SAMPLE_RATE)


def test_a_few_nan_and_inf_are_silenced_without_touching_the_input() -> None:
    source = tone(1.0, SAMPLE_RATE).astype(np.float32)
    source[[10, 500, 9000]] = [np.nan, np.inf, -np.inf]
    audio = prepare_audio(source, SAMPLE_RATE)
    assert_model_format(audio)
    assert audio[10] == audio[500] == audio[9000] == 0.0
    assert np.isnan(source[10])  # the caller's array is left alone
    # Before resampling, too: a NaN would otherwise smear over the filter's whole length.
    resampled = prepare_audio(np.stack([source, source], axis=1), 44100)
    assert_model_format(resampled)


def test_hot_float_input_is_clipped(caplog: pytest.LogCaptureFixture) -> None:
    source = np.array([0.0, 1.5, -3.0, 0.5, np.float32(1.0)], dtype=np.float32)
    with caplog.at_level(logging.DEBUG, logger="nanodictate.core.audio_input"):
        audio = prepare_audio(source, SAMPLE_RATE)
    np.testing.assert_array_equal(audio, [0.0, 1.0, -1.0, 0.5, 1.0])
    assert sum("clipping" in record.message for record in caplog.records) == 1
    # Resampling a full-scale square wave overshoots; the result must still be in range.
    square = np.sign(tone(0.5, 44100, freq=1000.0)).astype(np.float32)
    assert_model_format(prepare_audio(square, 44100))


def test_absurdly_long_recording_is_refused_with_its_length() -> None:
    ten_minutes = np.zeros(10 * 60 * 8000, dtype=np.int16)
    with pytest.raises(AudioInputError, match=r"10 minutes long.*5\.0 minutes"):
        prepare_audio(ten_minutes, 8000, max_seconds=300)
    # A wrong, tiny rate makes a short array look enormous: refused before resampling it.
    with pytest.raises(AudioInputError, match="minutes long"):
        prepare_audio(np.zeros(2_000_000, dtype=np.float32), 10)


def test_sample_rate_with_a_file_is_a_programming_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sample_rate"):
        prepare_audio(tmp_path / "x.wav", 16000)


def test_audio_seconds() -> None:
    assert audio_seconds(np.zeros(24000, dtype=np.float32)) == 1.5
    assert audio_seconds(np.zeros((44100, 2)), 44100) == 1.0


# --- files -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spoken_wav(tmp_path_factory: pytest.TempPathFactory, espeak: str) -> Path:
    return speak(
        "Testing one two three, this is a file.",
        tmp_path_factory.mktemp("audio") / "speech.wav",
    )


@pytest.mark.parametrize(
    ("extension", "format", "subtype", "lossless"),
    [
        ("wav", "WAV", "PCM_16", True),
        ("flac", "FLAC", "PCM_16", True),
        ("ogg", "OGG", "VORBIS", False),
        ("mp3", "MP3", "MPEG_LAYER_III", False),
    ],
)
def test_audio_files_are_read(
    spoken_wav: Path,
    tmp_path: Path,
    extension: str,
    format: str,
    subtype: str,
    lossless: bool,
) -> None:
    data, rate = soundfile.read(spoken_wav, dtype="float32")
    assert rate == 22050  # espeak-ng's own rate, so the file path resamples too
    path = tmp_path / f"speech.{extension}"
    # libsndfile ≥ 1.1 (bundled with the soundfile wheels) writes and reads MP3 itself, so
    # every format is made and read here without ffmpeg or sox's MP3 plugin.
    soundfile.write(path, np.stack([data, data], axis=1), rate, format=format, subtype=subtype)

    audio = prepare_audio(path)

    assert_model_format(audio)
    reference = prepare_audio(data, rate)
    assert abs(len(audio) - len(reference)) <= 0.05 * SAMPLE_RATE  # MP3 may pad a frame
    if lossless:
        np.testing.assert_allclose(audio, reference, atol=2e-4)
    else:
        # Lossy codecs change the waveform, not its loudness.
        rms = float(np.sqrt(np.mean(audio**2)))
        assert rms == pytest.approx(float(np.sqrt(np.mean(reference**2))), rel=0.15)


def test_espeak_wav_is_read(spoken_wav: Path) -> None:
    audio = prepare_audio(str(spoken_wav))
    assert_model_format(audio)
    assert 1.0 < audio_seconds(audio) < 6.0
    assert float(np.max(np.abs(audio))) > 0.1


def test_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "dictation.wav"
    with pytest.raises(AudioInputError, match="does not exist") as error:
        prepare_audio(path)
    assert str(path) in str(error.value)


def test_text_file_pretending_to_be_wav_is_named(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("This is not audio at all.\n" * 20)
    with pytest.raises(AudioInputError, match="could not be read as audio") as error:
        prepare_audio(path)
    assert "notes.wav" in str(error.value)


def test_truncated_file_is_refused(spoken_wav: Path, tmp_path: Path) -> None:
    path = tmp_path / "truncated.flac"
    data, rate = soundfile.read(spoken_wav, dtype="float32")
    soundfile.write(path, data, rate, format="FLAC")
    path.write_bytes(path.read_bytes()[:30])  # the header is cut in the middle
    with pytest.raises(AudioInputError, match=r"truncated\.flac"):
        prepare_audio(path)


def test_empty_audio_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    soundfile.write(path, np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(AudioInputError, match=r"empty\.wav is empty"):
        prepare_audio(path)


def test_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AudioInputError, match="folder"):
        prepare_audio(tmp_path)


def test_too_long_file_is_refused_before_decoding(spoken_wav: Path) -> None:
    with pytest.raises(AudioInputError, match=r"speech\.wav is \d seconds long.* is 2 seconds"):
        prepare_audio(spoken_wav, max_seconds=2.0)


def test_fallback_reader_returns_frames_by_channels(spoken_wav: Path, tmp_path: Path) -> None:
    # The librosa/audioread fallback serves formats libsndfile lacks (m4a with ffmpeg
    # installed); its layout handling is checked here on a stereo file both readers know.
    data, rate = soundfile.read(spoken_wav, dtype="float32")
    path = tmp_path / "stereo.wav"
    soundfile.write(path, np.stack([data, -data], axis=1), rate)
    samples, read_rate = _read_with_librosa(path)
    assert read_rate == rate
    assert samples.shape == (len(data), 2)
    np.testing.assert_allclose(samples[:, 0], data, atol=1e-4)


# --- import cost -----------------------------------------------------------------------------


def test_importing_the_audio_modules_loads_no_heavy_library() -> None:
    code = (
        "import sys, nanodictate.core.audio_input, nanodictate.core.asr.vad\n"
        "heavy = [m for m in ('torch', 'funasr', 'librosa', 'soundfile', 'soxr') "
        "if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    # Run from the repository root, which `-c` puts on sys.path, whether or not the package
    # is installed in the environment.
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert result.stdout.strip() == "", f"imported at module level: {result.stdout.strip()}"
