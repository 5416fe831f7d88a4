"""Short start/stop tones, played with the sound module the recorder uses (QtMultimedia is
not in PySide6-Essentials). Quiet and short, so the microphone barely hears them."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

_RATE = 44100
_TONES = {"start": (660.0, 880.0), "stop": (880.0, 660.0)}


def _tone(start_hz: float, end_hz: float, seconds: float = 0.07, volume: float = 0.15) -> Any:
    t = np.arange(int(_RATE * seconds)) / _RATE
    frequency = np.linspace(start_hz, end_hz, t.size)
    wave = np.sin(2 * np.pi * np.cumsum(frequency) / _RATE)
    fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)  # no clicks at the ends
    return (volume * wave * fade).astype(np.float32)


class Sounds:
    def __init__(self, sd: Any) -> None:
        self._sd = sd
        self._cache = {name: _tone(*hz) for name, hz in _TONES.items()}

    def play(self, name: str) -> None:
        try:
            self._sd.play(self._cache[name], _RATE, blocking=False)
        except Exception as error:  # no output device: sounds are a nicety
            log.debug("Cannot play the %s sound: %s", name, error)
