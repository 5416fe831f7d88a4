"""The recorder on a real audio server (PulseAudio with a virtual microphone, from the desktop
harness): at rest it asks for 50 ms blocks, and a tone played before start() is in the
recording's pre-roll. Skipped when PulseAudio or the harness's tools are not installed."""

from __future__ import annotations

import time
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from desktop.harness import DesktopSession, missing_tools

from nanodictate.core.recorder import BLOCK_SECONDS, TARGET_RATE, Recorder

TONE_HZ = 1000.0


@pytest.fixture
def pulse(monkeypatch: pytest.MonkeyPatch) -> Iterator[DesktopSession]:
    missing = missing_tools(tray=False, audio=True)
    if missing:
        pytest.skip(f"needs these tools installed: {', '.join(missing)}")
    with DesktopSession(tray=False, audio=True, watchdog_s=60) as session:
        session.apply_env(monkeypatch)  # PULSE_SERVER: ALSA's pulse plugin reads it on open
        yield session


def _tone_wav(path: Path, seconds: float) -> Path:
    t = np.arange(int(seconds * TARGET_RATE)) / TARGET_RATE
    pcm = (0.5 * np.sin(2 * np.pi * TONE_HZ * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(TARGET_RATE)
        out.writeframes(pcm.tobytes())
    return path


def _tone_ms(samples: np.ndarray) -> int:
    """How many 10 ms windows hold the tone (RMS well above silence, peak at 1 kHz)."""
    windows = samples[: len(samples) // 160 * 160].reshape(-1, 160)
    loud = windows[np.sqrt(np.mean(windows**2, axis=1)) > 0.1]
    if len(loud) == 0:
        return 0
    spectrum = np.abs(np.fft.rfft(loud.reshape(-1)))
    assert np.argmax(spectrum) * TARGET_RATE / loud.size == pytest.approx(TONE_HZ, abs=20)
    return 10 * len(loud)


def test_tone_played_before_key_down_is_in_the_preroll(
    pulse: DesktopSession, tmp_path: Path
) -> None:
    import sounddevice as sd

    recorder = Recorder(sd, keep_open=True, preroll_seconds=0.3)
    recorder.open()
    try:
        rate = recorder.sample_rate
        assert recorder._stream.blocksize == round(rate * BLOCK_SECONDS)
        deadline = time.monotonic() + 10
        while (recorder.seconds_since_last_frame() or 1.0) > 0.2:
            assert time.monotonic() < deadline, "the open stream delivers no audio"
            time.sleep(0.02)
        time.sleep(0.5)  # the ring fills with silence
        pulse.play_speech(_tone_wav(tmp_path / "tone.wav", 0.15))  # returns once played
        recorder.start()  # key-down right after the tone
        time.sleep(0.4)
        recording = recorder.stop()
    finally:
        recorder.close()
    preroll = int(recording.preroll_seconds * TARGET_RATE)
    assert recording.preroll_seconds == pytest.approx(0.3, abs=0.01)
    # The tone (150 ms) was played before start(): most of it is in the pre-roll; what the
    # pipeline still held at key-down comes in the first block after it, none of it later.
    assert _tone_ms(recording.samples[:preroll]) >= 60
    assert _tone_ms(recording.samples) >= 120
    assert _tone_ms(recording.samples[preroll + int(0.25 * TARGET_RATE) :]) == 0
