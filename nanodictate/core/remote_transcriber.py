"""A `Transcriber` that sends the recording to a team server (``nanodictate serve``).

Standard library only (urllib, wave): the tray app gains no dependency. The server speaks
OpenAI's ``POST /v1/audio/transcriptions``; hotwords and ITN travel as extra form fields and
``verbose_json`` brings back segments and the server's precision and device.

`FallbackTranscriber` puts the local engine behind it, for a server that cannot be reached,
and tells the user once when it starts using it.
"""

from __future__ import annotations

import io
import json
import logging
import uuid
import wave
from collections.abc import Callable, Sequence
from typing import Any
from urllib import error as urlerror
from urllib import request as urlrequest

import numpy as np

from nanodictate.core import messages
from nanodictate.core.audio_input import SAMPLE_RATE, prepare_audio
from nanodictate.core.errors import NanodictateError
from nanodictate.core.transcriber import (
    Audio,
    Capabilities,
    DeviceChoice,
    EngineState,
    LoadReport,
    MemoryReport,
    Precision,
    Segment,
    Transcriber,
    Transcription,
)

log = logging.getLogger(__name__)

TRANSCRIPTIONS_PATH = "/v1/audio/transcriptions"
# Waiting for the answer: the upload, a queue on a busy server, then the decoding.
BASE_TIMEOUT_S = 15.0
TIMEOUT_PER_AUDIO_SECOND = 0.5


class ServerUnreachableError(NanodictateError):
    """No answer from the server: it is down, the address is wrong, or the network failed."""


class ServerRefusedError(NanodictateError):
    """The server answered with an error (a wrong token, a limit, a bad recording)."""


def wav_bytes(samples: np.ndarray[Any, Any]) -> bytes:
    """16-bit mono WAV at 16 kHz: half the bytes of float32, and every reader takes it."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()


def multipart(fields: Sequence[tuple[str, str]], audio: bytes) -> tuple[bytes, str]:
    """(body, content type) of a form with text fields and the audio as ``file``."""
    boundary = f"nanodictate-{uuid.uuid4().hex}"
    parts = []
    for name, value in fields:
        disposition = f'Content-Disposition: form-data; name="{name}"'
        parts.append(f"--{boundary}\r\n{disposition}\r\n\r\n{value}\r\n".encode())
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="recording.wav"\r\nContent-Type: audio/wav\r\n\r\n'.encode()
    )
    parts.append(audio)
    parts.append(f"\r\n--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _server_message(error: urlerror.HTTPError) -> str:
    try:
        detail = json.loads(error.read().decode("utf-8"))["error"]["message"]
    except Exception:
        detail = error.reason
    return str(detail)


class RemoteTranscriber:
    """Transcription on a ``nanodictate serve`` server. Nothing to load: `load` is instant."""

    capabilities = Capabilities(
        can_offload=False, partial_text=False, remote=True, unload_frees_process=False
    )

    def __init__(self, url: str, token: str = "", *, timeout_s: float | None = None) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s
        self._state = EngineState.UNLOADED
        self.on_state_change: Callable[[EngineState], None] | None = None

    @property
    def state(self) -> EngineState:
        return self._state

    def _set_state(self, state: EngineState) -> None:
        self._state = state
        if self.on_state_change is not None:
            self.on_state_change(state)

    def load(
        self,
        precision: Precision | str = Precision.INT8,
        device: DeviceChoice | str = DeviceChoice.AUTO,
    ) -> LoadReport:
        # The server chose its own precision and device; the answer to each request says them.
        if self._state is not EngineState.READY:
            self._set_state(EngineState.READY)
        return LoadReport(Precision(precision), "server", 0.0, True, None)

    def transcribe(
        self,
        audio: Audio,
        sample_rate: int | None = None,
        *,
        language: str = "en",
        hotwords: Sequence[str] = (),
        itn: bool = True,
    ) -> Transcription:
        samples = prepare_audio(audio, sample_rate)
        seconds = len(samples) / SAMPLE_RATE
        fields = [
            ("model", "fun-asr-mlt-nano"),
            ("language", language),
            ("response_format", "verbose_json"),
            ("itn", "true" if itn else "false"),
            *(("hotwords", word.strip()) for word in hotwords if word.strip()),
        ]
        body, content_type = multipart(fields, wav_bytes(samples))
        answer = self._post(body, content_type, seconds)
        segments = tuple(
            Segment(float(s["start"]), float(s["end"]), str(s["text"]))
            for s in answer.get("segments", [])
        )
        served = answer.get("nanodictate", {})
        timings = {k: float(v) for k, v in served.get("timings", {}).items()}
        return Transcription(
            str(answer.get("text", "")),
            str(answer.get("language", language)),
            float(answer.get("duration", seconds)),
            segments,
            timings,
        )

    def _post(self, body: bytes, content_type: str, audio_seconds: float) -> dict[str, Any]:
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urlrequest.Request(
            self.url + TRANSCRIPTIONS_PATH, data=body, headers=headers, method="POST"
        )
        timeout = self.timeout_s or BASE_TIMEOUT_S + TIMEOUT_PER_AUDIO_SECOND * audio_seconds
        try:
            with urlrequest.urlopen(request, timeout=timeout) as response:
                answer = json.loads(response.read().decode("utf-8"))
        except urlerror.HTTPError as error:
            message = _server_message(error)
            if error.code == 401:
                raise ServerRefusedError(messages.server_refused_token(self.url, message)) from None
            raise ServerRefusedError(messages.server_failed(self.url, message)) from None
        except (urlerror.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            raise ServerUnreachableError(messages.server_unreachable(self.url, reason)) from None
        if not isinstance(answer, dict):
            raise ServerRefusedError(messages.server_failed(self.url, "the answer is not JSON"))
        return answer

    def unload(self) -> None:
        if self._state is not EngineState.UNLOADED:
            self._set_state(EngineState.UNLOADED)

    def offload(self) -> bool:
        return False

    def memory_report(self) -> MemoryReport:
        from nanodictate.core.asr.memory import process_rss

        return MemoryReport(process_rss=process_rss(), model_cpu_bytes=0, model_gpu_bytes=0)


class FallbackTranscriber:
    """The server first; this computer's engine when the server cannot be reached.

    Only an unreachable server falls back: a refused token or a limit is the user's to fix,
    and transcribing such a recording locally would hide that.

    `on_fallback(title, message)` is called, on the transcribing thread, when a dictation
    goes to the local engine after the server had answered (or at the first dictation):
    once per outage, not once per dictation. The caller shows it; no UI is imported here.
    """

    capabilities = RemoteTranscriber.capabilities

    def __init__(self, remote: RemoteTranscriber, make_local: Callable[[], Transcriber]) -> None:
        self.remote = remote
        self._make_local = make_local
        self._local: Transcriber | None = None
        self._load_args: tuple[Precision | str, DeviceChoice | str] = (
            Precision.INT8,
            DeviceChoice.AUTO,
        )
        self.on_state_change: Callable[[EngineState], None] | None = None
        self.on_fallback: Callable[[str, str], None] | None = None
        self._falling_back = False  # the last dictation went to the local engine

    @property
    def state(self) -> EngineState:
        return self.remote.state

    def load(
        self,
        precision: Precision | str = Precision.INT8,
        device: DeviceChoice | str = DeviceChoice.AUTO,
    ) -> LoadReport:
        self._load_args = (precision, device)
        self.remote.on_state_change = self.on_state_change
        return self.remote.load(precision, device)

    def transcribe(
        self,
        audio: Audio,
        sample_rate: int | None = None,
        *,
        language: str = "en",
        hotwords: Sequence[str] = (),
        itn: bool = True,
    ) -> Transcription:
        try:
            result = self.remote.transcribe(
                audio, sample_rate, language=language, hotwords=hotwords, itn=itn
            )
        except ServerUnreachableError as error:
            log.warning("%s Transcribing on this computer instead.", error)
        else:
            if self._falling_back:
                log.info("The server %s answers again", self.remote.url)
                self._falling_back = False
            return result
        if not self._falling_back:
            self._falling_back = True
            self._tell(*messages.server_fallback_local(self.remote.url))
        if self._local is None:
            self._local = self._make_local()
        self._local.load(*self._load_args)
        return self._local.transcribe(
            audio, sample_rate, language=language, hotwords=hotwords, itn=itn
        )

    def _tell(self, title: str, message: str) -> None:
        if self.on_fallback is None:
            return
        try:
            self.on_fallback(title, message)
        except Exception:  # a notice that cannot be shown must not cost the dictation
            log.exception("Telling the user about the fallback failed")

    def unload(self) -> None:
        self.remote.unload()
        if self._local is not None:
            self._local.unload()

    def offload(self) -> bool:
        return False

    def memory_report(self) -> MemoryReport:
        if self._local is not None:
            return self._local.memory_report()
        return self.remote.memory_report()
