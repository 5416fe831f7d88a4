"""Microphone capture for one dictation at a time, with a pre-roll so no first word is lost.

The sound module (``sounddevice`` or a test double with the same API) is passed in, so tests
drive the recorder with a fake stream or a PulseAudio virtual microphone.

Why the stream stays open (``keep_open=True``, the default): measured on a PulseAudio
virtual microphone (null sink + remap source, sounddevice 0.5, 44.1 kHz, ``latency="low"``),
opening a stream at key-down delivered its first frame after a median 1706 ms when the
source was idle (the null sink renders in big blocks) and 10 ms when something kept it busy;
peers' users report the same "first words lost" (Handy 1283, 1879). A stream that is already
running delivered its next block a median 2.3 ms (max 3.4 ms; 664 ms once, right after it was
opened) after `start()`, and its ring buffer adds the last ``preroll_seconds`` before the key
press, which catches a word begun together with the key. Privacy: while idle, audio only
passes through a 0.3 s ring buffer in RAM and is overwritten; nothing is stored or sent.

Cost at rest (bench/idle_cpu.py, same virtual microphone, 2-core EPYC): PortAudio's own
choice of block (≈80 frames at 44.1 kHz, ≈500 callbacks a second) took 8.7–10.5 % of a core,
most of it PortAudio/ALSA work per callback, about a quarter our Python (mono mix, list of
blocks). Now the stream runs in fixed 50 ms blocks (20 callbacks a second) and an idle
callback only copies its block into a ring buffer allocated once: 0.56–0.70 % of a core
when only we record from the source (1.3–1.5 % when another low-latency client keeps the
server pushing small packets to every client). start() → first block is then 11–12 ms
median, 44 ms at most (was 2 ms); no audio is lost either way, since the first block after
start() holds everything since the one before it.
``keep_open=False`` opens the stream at key-down instead (for headsets that drop to call
quality while any microphone is open, or for users who want the microphone indicator off).

Audio is captured at the device's native rate (no PortAudio/ALSA resampling of unknown
quality), mixed to mono in the callback, and resampled to 16 kHz there too, block by block
(soxr's stream, the same HQ filter and the same samples as resampling the whole recording at
once; ≈25 µs a 50 ms block). So a recording is held at 16 kHz only: ten minutes are 38 MB
instead of 106 MB at 44.1 kHz, and `stop()` needs no second copy at the native rate (a
10-minute recording through the app grew it by 349 MB at its peak when it was resampled at
the end, see tests/desktop/test_app_faults_devices.py).
Callbacks run on PortAudio's thread; ``on_stop`` is called from there too, and the caller
moves it to its own thread.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from nanodictate.core.audio_blocks import TARGET_RATE as TARGET_RATE
from nanodictate.core.audio_blocks import Resampler, Ring, Samples, mono_mix
from nanodictate.core.audio_devices import InputDevice as InputDevice
from nanodictate.core.audio_devices import close_stream, refresh_devices
from nanodictate.core.audio_devices import list_input_devices as list_input_devices
from nanodictate.core.errors import NanodictateError

log = logging.getLogger(__name__)

DEFAULT_PREROLL_SECONDS = 0.3
# PortAudio calls back once per block. With its own choice (`latency="low"`, no block size) that
# was ≈500 calls a second on PulseAudio, ≈7–10 % of a core at rest for nothing but the pre-roll;
# 50 ms blocks make it 20 a second (see bench/idle_cpu.py). Audio is never lost by a bigger block:
# the block that arrives after start() holds everything since the one before it.
BLOCK_SECONDS = 0.05
DEFAULT_MAX_SECONDS = 600.0
# Stereo at most: a mono mix of more channels only adds the noise of unused inputs (PulseAudio's
# "default" ALSA device claims 32).
MAX_CAPTURE_CHANNELS = 2


class MicrophoneError(NanodictateError):
    """No usable microphone, or it could not be opened."""


class StopReason(enum.StrEnum):
    STOPPED = "stopped"  # the user stopped it
    MAX_LENGTH = "max_length"
    DEVICE_LOST = "device_lost"


@dataclass(frozen=True)
class Recording:
    samples: Samples  # mono float32 at 16 kHz
    native_rate: int
    reason: StopReason
    first_frame_latency_s: float | None  # start() → first callback after it
    preroll_seconds: float

    @property
    def seconds(self) -> float:
        return len(self.samples) / TARGET_RATE


class Recorder:
    """Start/stop capture; `level` is the RMS of the latest block for the tray icon."""

    def __init__(
        self,
        sd: Any,
        *,
        device: int | str | None = None,
        max_seconds: float = DEFAULT_MAX_SECONDS,
        preroll_seconds: float = DEFAULT_PREROLL_SECONDS,
        keep_open: bool = True,
        on_stop: Callable[[StopReason], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sd = sd
        self.device = device
        self.max_seconds = max_seconds
        self.preroll_seconds = preroll_seconds
        self.keep_open = keep_open
        self.on_stop = on_stop
        self._clock = clock
        self._lock = threading.Lock()
        self._stream: Any = None
        self._rate = 0
        # Identifies the running stream, so a finished callback of a stream we closed
        # ourselves is not taken for a lost device.
        self._token: object | None = None
        self._recording = False
        self._chunks: list[Samples] = []  # the recording so far, at 16 kHz
        self._resampler: Resampler | None = None
        self._preroll_frames = 0
        self._frames = 0
        self._ring = Ring()
        self._started_at: float | None = None
        self._first_frame_at: float | None = None
        self._last_frame_at: float | None = None
        self._stop_reason: StopReason | None = None
        self._level = 0.0

    # ------------------------------------------------------------------ stream lifetime

    @property
    def is_open(self) -> bool:
        stream = self._stream
        return stream is not None and bool(getattr(stream, "active", True))

    @property
    def is_recording(self) -> bool:
        return self._recording

    @property
    def level(self) -> float:
        """RMS of the latest block (0 … 1); 0 when not recording."""
        return self._level if self._recording else 0.0

    @property
    def sample_rate(self) -> int:
        return self._rate

    def open(self) -> None:
        """Open and start the input stream (no-op when it already runs)."""
        self._close_dead_stream()
        with self._lock:
            if not self.is_open:
                self._open_locked()

    def _close_dead_stream(self) -> None:
        """Close a stream that ended by itself (its device or server went away), before
        another is opened: re-reading the device list needs all our streams closed. Outside
        the lock: stopping a stream waits for its callback, which takes the lock."""
        with self._lock:
            stale = None if self.is_open else self._detach_locked()
        close_stream(stale)

    def _open_locked(self) -> None:
        """Open the stream; if that fails, read the device list again and retry once: the
        microphone or the audio server may have come since PortAudio listed the devices."""
        try:
            self._open_stream_locked()
        except MicrophoneError as error:
            if not refresh_devices(self._sd):
                raise
            log.info("Audio devices read again (%s)", error)
            self._open_stream_locked()

    def _open_stream_locked(self) -> None:
        try:
            info = self._sd.query_devices(self.device, "input")
        except Exception as error:
            raise MicrophoneError(
                "No microphone found. Connect one, or pick another in the tray menu (Microphone)."
            ) from error
        channels = max(1, min(MAX_CAPTURE_CHANNELS, int(info.get("max_input_channels", 1))))
        rate = int(info.get("default_samplerate") or TARGET_RATE)
        token = object()
        try:
            stream = self._sd.InputStream(
                device=self.device,
                samplerate=rate,
                channels=channels,
                dtype="float32",
                latency="low",
                blocksize=max(1, round(rate * BLOCK_SECONDS)),
                callback=self._callback,
                finished_callback=lambda: self._finished(token),
            )
            self._token = token
            self._ring = Ring(int(self.preroll_seconds * rate), channels)
            stream.start()
        except Exception as error:
            raise MicrophoneError(
                f"The microphone {info.get('name', '')!s} could not be opened: {error}"
            ) from error
        self._stream, self._rate = stream, rate
        log.info("Microphone open: %s, %d Hz, %d channel(s)", info.get("name"), rate, channels)

    def close(self) -> None:
        """Stop the stream (a recording in progress is discarded)."""
        with self._lock:
            self._recording = False
            self._chunks = []
            stream = self._detach_locked()
        close_stream(stream)

    def _detach_locked(self) -> Any:
        """Forget the stream; the caller stops it with `close_stream` after releasing the lock
        (stopping waits for the callback, which takes the lock: holding it would deadlock)."""
        stream, self._stream = self._stream, None
        self._ring.clear()
        self._token = None
        return stream

    def set_device(self, device: int | str | None) -> None:
        """Use another microphone from the next recording on (now, if the stream stays open)."""
        with self._lock:
            self.device = device
            was_open = self._stream is not None
            if self._recording:
                return  # switched when this recording ends
            stream = self._detach_locked()
        close_stream(stream)
        if was_open and self.keep_open:
            self.open()

    # ------------------------------------------------------------------ recording

    def start(self) -> None:
        """Begin a recording: keeps the pre-roll, and opens the stream if it is not running."""
        self._close_dead_stream()
        if self._rate != TARGET_RATE:
            import soxr  # noqa: F401  (≈0.1 s the first time: not under the callback's lock)
        with self._lock:
            self._started_at = self._clock()
            self._first_frame_at = None
            self._stop_reason = None
            self._chunks = []
            self._frames = 0
            self._level = 0.0
            if not self.is_open:
                self._open_locked()
            preroll = self._ring.take()
            self._preroll_frames = len(preroll)
            self._resampler = Resampler(self._rate or TARGET_RATE)
            self._chunks = [self._resampler.push(preroll)]
            self._recording = True

    def stop(self) -> Recording:
        """End the recording (if still running) and return its audio at 16 kHz."""
        with self._lock:
            reason = self._stop_reason or StopReason.STOPPED
            self._recording = False
            resampler, self._resampler = self._resampler, None
            chunks, self._chunks = self._chunks, []
            if resampler is not None:
                chunks.append(resampler.finish())
            preroll_frames = self._preroll_frames
            rate = self._rate or TARGET_RATE
            latency = (
                None
                if self._first_frame_at is None or self._started_at is None
                else self._first_frame_at - self._started_at
            )
            stream = None
            if not self.keep_open or reason is StopReason.DEVICE_LOST:
                stream = self._detach_locked()
        close_stream(stream)
        samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
        del chunks
        # Resampling overshoots near full scale; the models were trained on clipped PCM.
        np.clip(samples, -1.0, 1.0, out=samples)
        return Recording(samples, rate, reason, latency, preroll_frames / rate)

    def samples_since(self, start: int) -> Samples:
        """A copy of the running recording from sample `start` (16 kHz) to now, clipped as
        `stop` clips it; for transcribing while the user speaks. Empty when not recording."""
        with self._lock:
            if not self._recording:
                return np.zeros(0, dtype=np.float32)
            total = sum(len(chunk) for chunk in self._chunks)
            wanted: list[Samples] = []
            position = total
            for chunk in reversed(self._chunks):
                if position <= start:
                    break
                position -= len(chunk)
                wanted.append(chunk[max(start - position, 0) :])
        samples = np.concatenate(wanted[::-1]) if wanted else np.zeros(0, dtype=np.float32)
        return np.clip(samples, -1.0, 1.0)

    def cancel(self) -> None:
        """Drop the recording in progress."""
        with self._lock:
            self._recording = False
            self._chunks = []
            self._resampler = None
            stream = None if self.keep_open else self._detach_locked()
        close_stream(stream)

    @property
    def first_frame_latency_s(self) -> float | None:
        """start() → the first audio callback after it, for the current/last recording."""
        if self._first_frame_at is None or self._started_at is None:
            return None
        return self._first_frame_at - self._started_at

    @property
    def first_frame_at(self) -> float | None:
        """Clock time of the first callback after start(): key-down → audio is measured
        from the hotkey event's own time stamp against this."""
        return self._first_frame_at

    def seconds_since_last_frame(self) -> float | None:
        """How long the stream has been silent (not quiet: no callbacks); None before any."""
        last = self._last_frame_at
        return None if last is None else self._clock() - last

    # ------------------------------------------------------------------ PortAudio thread

    def _callback(self, indata: npt.NDArray[Any], frames: int, _time: Any, status: Any) -> None:
        now = self._clock()
        if status:
            log.debug("Input stream status: %s", status)
        stopped: StopReason | None = None
        with self._lock:
            self._last_frame_at = now
            if not self._recording:
                self._ring.push(indata)  # idle: one copy into preallocated memory, nothing else
                return
            mono = mono_mix(indata)
            if self._first_frame_at is None:
                self._first_frame_at = now
            limit = int(self.max_seconds * self._rate)
            room = limit - self._frames
            if room <= 0:
                return
            if len(mono) >= room:
                mono = mono[:room]
                stopped = StopReason.MAX_LENGTH
            self._frames += len(mono)
            if self._resampler is not None:
                self._chunks.append(self._resampler.push(mono))
            self._level = float(np.sqrt(np.mean(np.square(mono)))) if len(mono) else 0.0
            if stopped is not None:
                self._recording = False
                self._stop_reason = stopped
        if stopped is not None:
            log.info("Recording reached its maximum length (%.0f s)", self.max_seconds)
            self._notify(stopped)

    def _finished(self, token: object) -> None:
        """PortAudio ended the stream: ours to close, or the device went away."""
        with self._lock:
            if token is not self._token:
                return
            log.warning("The microphone stream ended unexpectedly (device lost?)")
            # The dead stream stays in _stream (inactive), so the next open() closes it.
            self._token = None
            was_recording = self._recording
            if was_recording:
                self._recording = False
                self._stop_reason = StopReason.DEVICE_LOST
        if was_recording:
            self._notify(StopReason.DEVICE_LOST)

    def mark_device_lost(self) -> None:
        """The caller saw the stream stall: end the recording as if the device vanished."""
        with self._lock:
            was_recording = self._recording
            self._recording = False
            if was_recording:
                self._stop_reason = StopReason.DEVICE_LOST
        if was_recording:
            self._notify(StopReason.DEVICE_LOST)

    def _notify(self, reason: StopReason) -> None:
        if self.on_stop is not None:
            try:
                self.on_stop(reason)
            except Exception:
                log.exception("on_stop handler failed")
