"""Audio as the recorder handles it between PortAudio's callback and a recording: blocks
mixed to mono, the pre-roll ring, and resampling to the models' 16 kHz as the blocks come."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

TARGET_RATE = 16000
Samples = npt.NDArray[np.float32]


def mono_mix(block: npt.NDArray[Any]) -> Samples:
    if block.ndim == 2 and block.shape[1] > 1:
        return np.asarray(block.mean(axis=1, dtype=np.float32), dtype=np.float32)
    return np.array(block.reshape(-1), dtype=np.float32)


class Ring:
    """The last `capacity` frames as they came (all channels), in memory allocated once.

    While idle the callback does nothing but copy its block in here; mixing to mono happens
    once, in `take()` at key-down.
    """

    def __init__(self, capacity: int = 0, channels: int = 1) -> None:
        self._data = np.zeros((max(0, capacity), channels), dtype=np.float32)
        self._end = 0  # where the next frame goes
        self._filled = 0

    def push(self, block: npt.NDArray[Any]) -> None:
        capacity = len(self._data)
        if capacity == 0:
            return
        frames = len(block)
        if block.ndim == 1:
            block = block[:, None]
        if frames >= capacity:
            self._data[:] = block[frames - capacity :]
            self._end, self._filled = 0, capacity
            return
        first = min(frames, capacity - self._end)
        self._data[self._end : self._end + first] = block[:first]
        if first < frames:
            self._data[: frames - first] = block[first:]
        self._end = (self._end + frames) % capacity
        self._filled = min(capacity, self._filled + frames)

    def take(self) -> Samples:
        """What it holds, oldest first, mixed to mono; the ring is empty afterwards."""
        if self._filled < len(self._data):
            frames = self._data[: self._filled]  # not wrapped yet: it starts at 0
        else:
            frames = np.concatenate((self._data[self._end :], self._data[: self._end]))
        mono = mono_mix(frames)
        self.clear()
        return mono

    def clear(self) -> None:
        self._end = self._filled = 0


class Resampler:
    """Mono audio at `rate` to 16 kHz, block by block as it comes."""

    def __init__(self, rate: int) -> None:
        self._stream: Any = None
        if rate != TARGET_RATE:
            import soxr  # the engine's resampler for files too; imported at the first recording

            self._stream = soxr.ResampleStream(rate, TARGET_RATE, 1, quality="HQ")

    def push(self, mono: Samples) -> Samples:
        if self._stream is None:
            return mono
        return np.asarray(self._stream.resample_chunk(mono), dtype=np.float32)

    def finish(self) -> Samples:
        """What the filter still holds (its last few ms); nothing may be pushed after."""
        if self._stream is None:
            return np.zeros(0, dtype=np.float32)
        return np.asarray(
            self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True),
            dtype=np.float32,
        )
