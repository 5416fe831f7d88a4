"""The system's microphones as the sound module (sounddevice, or a test double) lists them,
and PortAudio's device list read again when a device or the audio server appears."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InputDevice:
    index: int
    name: str
    channels: int
    default_rate: int
    is_default: bool


def list_input_devices(sd: Any) -> list[InputDevice]:
    """The devices that can record, as the sound module reports them."""
    try:
        devices = sd.query_devices()
        default = sd.default.device[0] if sd.default.device is not None else None
    except Exception as error:  # PortAudio not initialised, no server …
        log.warning("Cannot list audio devices: %s", error)
        return []
    found = []
    for index, info in enumerate(devices):
        channels = int(info.get("max_input_channels", 0))
        if channels > 0:
            found.append(
                InputDevice(
                    index,
                    str(info["name"]),
                    channels,
                    int(info.get("default_samplerate", 0)),
                    index == default,
                )
            )
    return found


def refresh_devices(sd: Any) -> bool:
    """Have the sound module read the system's audio devices again; False if it cannot.

    PortAudio lists the devices once, when it is initialised (at ``import sounddevice``): a
    microphone plugged in later, or an audio server started after the app, stays unknown
    until PortAudio is initialised again (sounddevice issues 125 and 382; PortAudio's
    hot-plug support, its issue 11, is unfinished). Terminating PortAudio ends every stream
    it has open, so call this only when no stream of ours runs; the stream of the last
    ``sd.play()`` (the start/stop sounds) is stopped first.
    """
    terminate = getattr(sd, "_terminate", None)
    initialize = getattr(sd, "_initialize", None)
    if terminate is None or initialize is None:
        return False
    with contextlib.suppress(Exception):
        sd.stop()
    try:
        terminate()
    except Exception as error:  # not initialised: an earlier initialisation failed
        log.debug("Terminating PortAudio failed: %s", error)
    try:
        initialize()
    except Exception as error:
        log.warning("Cannot initialise the audio library: %s", error)
        return False
    return True


def close_stream(stream: Any) -> None:
    """Abort, not stop: `stop()` waits for PortAudio's pending buffers, and a stream whose
    source stalled (delivers nothing, yet is not gone) does not get them. On PulseAudio stop()
    on such a stream had not returned after 40 s; in the app the GUI thread hung ≈100 s after
    "Microphone lost", and quitting hung. abort() returned in under 1 ms. An input stream has
    nothing worth waiting for (the recording took its audio under the lock already), and
    PortAudio's ALSA thread honours an abort only while it waits for audio, never inside our
    callback (it disables cancellation around it)."""
    if stream is None:
        return
    try:
        stream.abort()
        stream.close()
    except Exception as error:  # a lost device may fail to stop; it is gone anyway
        log.debug("Closing the input stream failed: %s", error)
