"""The recorder with a fake sounddevice module: mono mix, resampling, pre-roll, device loss,
maximum length, first-frame timing. (The real PulseAudio path is measured separately; see the
recorder's module docstring.)"""

from __future__ import annotations

import numpy as np
import pytest
from ui.ui_fakes import FakeSoundDevice

from nanodictate.core.recorder import (
    MicrophoneError,
    Recorder,
    StopReason,
    list_input_devices,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_stereo_48k_is_mixed_to_mono_and_resampled_to_16k() -> None:
    sd = FakeSoundDevice(rate=48000, channels=2)
    recorder = Recorder(sd, keep_open=False, preroll_seconds=0)
    recorder.start()
    stream = sd.stream
    assert stream.samplerate == 48000 and stream.channels == 2
    t = np.arange(48000) / 48000
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    block = np.stack([left, np.zeros_like(left)], axis=1)  # right channel silent
    for start in range(0, 48000, 960):
        stream.feed(block[start : start + 960])
    recording = recorder.stop()
    assert recording.native_rate == 48000
    assert recording.samples.dtype == np.float32
    assert len(recording.samples) == pytest.approx(16000, abs=2)
    # The mono mix halves a one-sided signal: peak 0.25, RMS 0.25/√2.
    middle = recording.samples[2000:14000]
    assert np.sqrt(np.mean(middle**2)) == pytest.approx(0.25 / np.sqrt(2), rel=0.02)
    spectrum = np.abs(np.fft.rfft(middle))
    assert np.argmax(spectrum) * 16000 / len(middle) == pytest.approx(440, abs=3)


def test_16k_mono_device_passes_through_unchanged() -> None:
    sd = FakeSoundDevice(rate=16000, channels=1)
    recorder = Recorder(sd, keep_open=False, preroll_seconds=0)
    recorder.start()
    samples = np.linspace(-0.5, 0.5, 1600, dtype=np.float32)
    sd.stream.feed(samples[:, None])
    recording = recorder.stop()
    np.testing.assert_array_equal(recording.samples, samples)


def test_open_stream_keeps_a_preroll_of_the_audio_before_start() -> None:
    sd = FakeSoundDevice(rate=16000, channels=1)
    recorder = Recorder(sd, keep_open=True, preroll_seconds=0.3)
    recorder.open()
    stream = sd.stream
    stream.feed_seconds(1.0, value=0.1, block=160)  # idle: only the last 0.3 s is kept
    recorder.start()
    stream.feed_seconds(0.5, value=0.2, block=160)
    recording = recorder.stop()
    assert recording.preroll_seconds == pytest.approx(0.3, abs=0.011)
    assert recording.seconds == pytest.approx(0.8, abs=0.011)
    assert recording.samples[0] == pytest.approx(0.1)
    assert recording.samples[-1] == pytest.approx(0.2)
    # The stream stays open for the next dictation; the ring starts empty again.
    assert stream.active and len(sd.streams) == 1
    recorder.start()
    assert recorder.stop().seconds == 0


def test_closed_stream_mode_opens_at_start_and_closes_at_stop() -> None:
    sd = FakeSoundDevice()
    recorder = Recorder(sd, keep_open=False)
    assert not sd.streams
    recorder.start()
    sd.stream.feed_seconds(0.1)
    recorder.stop()
    assert sd.stream.closed and not sd.stream.active


def test_device_lost_mid_recording_keeps_the_audio_and_reports_it() -> None:
    sd = FakeSoundDevice(rate=16000, channels=1)
    reasons: list[StopReason] = []
    recorder = Recorder(sd, keep_open=True, preroll_seconds=0, on_stop=reasons.append)
    recorder.open()
    recorder.start()
    sd.stream.feed_seconds(0.5, value=0.3, block=160)
    sd.stream.lose_device()
    assert reasons == [StopReason.DEVICE_LOST]
    assert not recorder.is_recording
    recording = recorder.stop()
    assert recording.reason is StopReason.DEVICE_LOST
    assert recording.seconds == pytest.approx(0.5, abs=0.011)
    # The next recording opens a new stream on whatever device is there now.
    recorder.start()
    assert len(sd.streams) == 2 and sd.stream.active


def test_our_own_stop_is_not_taken_for_a_lost_device() -> None:
    sd = FakeSoundDevice()
    reasons: list[StopReason] = []
    recorder = Recorder(sd, keep_open=False, on_stop=reasons.append)
    recorder.start()
    recorder.stop()
    recorder.open()
    recorder.close()
    assert reasons == []


def test_maximum_length_stops_the_recording_once_and_keeps_exactly_that_much() -> None:
    sd = FakeSoundDevice(rate=16000, channels=1)
    reasons: list[StopReason] = []
    recorder = Recorder(sd, max_seconds=1.0, preroll_seconds=0, on_stop=reasons.append)
    recorder.start()
    sd.stream.feed_seconds(1.5, block=300)
    assert reasons == [StopReason.MAX_LENGTH]
    recording = recorder.stop()
    assert recording.reason is StopReason.MAX_LENGTH
    assert len(recording.samples) == 16000


def test_first_frame_latency_and_level_are_measured() -> None:
    sd = FakeSoundDevice(rate=16000, channels=1)
    clock = Clock()
    recorder = Recorder(sd, keep_open=True, preroll_seconds=0, clock=clock)
    recorder.open()
    sd.stream.feed_seconds(0.1)
    recorder.start()
    assert recorder.first_frame_latency_s is None
    clock.now += 0.012
    sd.stream.feed(np.full((160, 1), 0.5, dtype=np.float32))
    assert recorder.first_frame_latency_s == pytest.approx(0.012)
    assert recorder.first_frame_at == pytest.approx(100.012)
    assert recorder.level == pytest.approx(0.5)
    clock.now += 3
    assert recorder.seconds_since_last_frame() == pytest.approx(3)
    recording = recorder.stop()
    assert recording.first_frame_latency_s == pytest.approx(0.012)
    assert recorder.level == 0.0


def test_cancel_discards_the_audio() -> None:
    sd = FakeSoundDevice(rate=16000, channels=1)
    recorder = Recorder(sd, preroll_seconds=0)
    recorder.start()
    sd.stream.feed_seconds(0.5)
    recorder.cancel()
    recorder.start()
    assert recorder.stop().seconds == 0


def test_no_microphone_raises_a_user_error() -> None:
    sd = FakeSoundDevice(devices=0)
    with pytest.raises(MicrophoneError, match="No microphone"):
        Recorder(sd).start()
    sd = FakeSoundDevice()
    sd.fail_open = True
    with pytest.raises(MicrophoneError, match="could not be opened"):
        Recorder(sd).open()


def test_switching_device_reopens_the_stream() -> None:
    sd = FakeSoundDevice(devices=2)
    recorder = Recorder(sd)
    recorder.open()
    first = sd.stream
    recorder.set_device("Mic 1")
    assert first.closed and sd.stream is not first
    assert sd.stream.kwargs["device"] == "Mic 1"
    assert [d.name for d in list_input_devices(sd)] == ["Mic 0", "Mic 1"]


@pytest.mark.parametrize("feed_block", [None, 1000, 7000])
def test_preroll_holds_exactly_the_audio_before_start_with_the_idle_block_size(
    feed_block: int | None,
) -> None:
    # Every sample is distinct, so the recording must be exactly the last 0.3 s before start()
    # followed by everything after it, whatever block sizes arrive (7000 > the 4800-frame ring).
    sd = FakeSoundDevice(rate=16000, channels=2)
    recorder = Recorder(sd, keep_open=True, preroll_seconds=0.3)
    recorder.open()
    stream = sd.stream
    assert stream.kwargs["blocksize"] == 800  # 50 ms: 20 callbacks a second at rest
    block = feed_block or stream.kwargs["blocksize"]
    signal = (np.arange(32000, dtype=np.float32) + 1) / 64000  # 2 s, all values distinct
    before, after = signal[:20000], signal[20000:]

    def feed(samples: np.ndarray) -> None:
        for start in range(0, len(samples), block):
            part = samples[start : start + block]
            stream.feed(np.stack([part, part], axis=1))

    feed(before)
    recorder.start()
    feed(after)
    recording = recorder.stop()
    assert recording.preroll_seconds == pytest.approx(0.3)
    np.testing.assert_allclose(recording.samples[:4800], before[-4800:], rtol=1e-6)
    np.testing.assert_allclose(recording.samples[4800:], after, rtol=1e-6)


def test_a_short_idle_stream_gives_what_it_has_and_the_mix_is_mono() -> None:
    sd = FakeSoundDevice(rate=16000, channels=2)
    recorder = Recorder(sd, keep_open=True, preroll_seconds=0.3)
    recorder.open()
    left = np.linspace(0.0, 0.4, 1000, dtype=np.float32)
    sd.stream.feed(np.stack([left, np.zeros_like(left)], axis=1))
    recorder.start()
    recording = recorder.stop()
    assert recording.preroll_seconds == pytest.approx(1000 / 16000)
    np.testing.assert_allclose(recording.samples, left / 2, rtol=1e-6)


def test_idle_callbacks_allocate_nothing_per_block() -> None:
    # At rest the callback only copies into the preallocated ring: no block-sized array (mono
    # mix, level, list of chunks) is made per callback. Python's tracemalloc sees numpy data.
    import tracemalloc

    sd = FakeSoundDevice(rate=48000, channels=2)
    recorder = Recorder(sd, keep_open=True)
    recorder.open()
    stream = sd.stream
    frames = stream.kwargs["blocksize"]
    block = np.full((frames, 2), 0.1, dtype=np.float32)
    stream.callback(block, frames, None, None)  # warm up
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        for _ in range(200):
            stream.callback(block, frames, None, None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < frames * 4 // 2  # far less than one mono block (9600 bytes)
    assert recorder.level == 0.0


class PortAudioLike(FakeSoundDevice):
    """PortAudio's device list: read when it is initialised, not when a device comes."""

    def __init__(self) -> None:
        super().__init__(rate=16000, channels=1)
        self.system = self.devices  # what the system has once the microphone is there
        self.devices = []  # what PortAudio listed at initialisation: nothing
        self.plugged = False
        self.calls: list[str] = []

    def stop(self) -> None:  # sd.stop(): the last sd.play() stream
        self.calls.append("stop")

    def _terminate(self) -> None:
        self.calls.append("terminate")

    def _initialize(self) -> None:
        self.calls.append("initialize")
        self.devices = list(self.system) if self.plugged else []


def test_a_microphone_that_comes_later_is_found_without_a_restart() -> None:
    sd = PortAudioLike()
    recorder = Recorder(sd, keep_open=True)
    with pytest.raises(MicrophoneError, match="No microphone found"):
        recorder.open()  # at app start: none
    assert sd.calls == ["stop", "terminate", "initialize"]  # looked again, still none
    sd.plugged = True
    recorder.start()  # key-down: the list is read again and the microphone found
    assert sd.calls[-3:] == ["stop", "terminate", "initialize"]
    sd.stream.feed_seconds(0.2)
    assert recorder.stop().seconds == pytest.approx(0.2, abs=0.01)
    recorder.start()  # from now on the open stream is used: no more re-reading
    assert len(sd.calls) == 6
    recorder.close()


def test_block_by_block_resampling_gives_the_samples_of_a_whole_recording_at_once() -> None:
    import soxr

    sd = FakeSoundDevice(rate=44100, channels=1)
    recorder = Recorder(sd, keep_open=False, preroll_seconds=0)
    recorder.start()
    audio = (0.3 * np.sin(2 * np.pi * 300 * np.arange(44100) / 44100)).astype(np.float32)
    for start in range(0, len(audio), 2205):
        sd.stream.feed(audio[start : start + 2205])
    recording = recorder.stop()
    whole = soxr.resample(audio, 44100, 16000, quality="HQ")
    np.testing.assert_allclose(recording.samples, whole, atol=1e-6)
