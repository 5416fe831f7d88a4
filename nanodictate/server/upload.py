"""One transcription request: the multipart form read, checked and turned into audio.

OpenAI's fields (``file``, ``model``, ``language``, ``prompt``, ``response_format``,
``temperature``) plus ours: ``hotwords`` (repeatable) and ``itn``. Everything a client can
get wrong raises `RequestRefused` with an HTTP status and a message for the caller; neither
the audio nor any text is logged.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import numpy as np

from nanodictate.core.audio_input import SAMPLE_RATE, prepare_audio
from nanodictate.core.errors import AudioInputError
from nanodictate.core.languages import language_for
from nanodictate.server.config import ServerConfig

RESPONSE_FORMATS = ("json", "text", "verbose_json")
_MAX_HOTWORD_LENGTH = 100
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class RequestRefused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class TranscriptionJob:
    """What the decoder needs from one request."""

    samples: np.ndarray[Any, np.dtype[np.float32]]
    language: str  # ISO code
    hotwords: tuple[str, ...]
    itn: bool


@dataclass(frozen=True)
class ParsedRequest:
    job: TranscriptionJob
    response_format: str


def parse_form(content_type: str, body: bytes) -> tuple[dict[str, list[str]], bytes | None]:
    """(text fields, the ``file`` part's bytes) of a multipart/form-data body."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise RequestRefused(415, "Send the audio as multipart/form-data with a 'file' field.")
    header = b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n"
    message = BytesParser(policy=policy.HTTP).parsebytes(header + body)
    if not isinstance(message, EmailMessage) or not message.is_multipart():
        raise RequestRefused(400, "The multipart form could not be read.")
    fields: dict[str, list[str]] = {}
    audio: bytes | None = None
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if not isinstance(name, str) or not isinstance(payload, bytes):
            continue
        if name == "file":
            audio = payload
        else:
            try:
                fields.setdefault(name, []).append(payload.decode("utf-8"))
            except UnicodeDecodeError:
                raise RequestRefused(400, f"Form field {name!r} is not UTF-8 text.") from None
    return fields, audio


def _one(fields: dict[str, list[str]], name: str, default: str) -> str:
    values = fields.get(name)
    return values[-1].strip() if values else default


def _flag(fields: dict[str, list[str]], name: str, default: bool) -> bool:
    value = _one(fields, name, "").lower()
    if not value:
        return default
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise RequestRefused(400, f"{name} must be true or false.")


def _hotwords(fields: dict[str, list[str]], config: ServerConfig) -> tuple[str, ...]:
    # Repeated fields, and for clients that can send a field only once, commas within one.
    words = [w.strip() for value in fields.get("hotwords", []) for w in value.split(",")]
    words = [w for w in words if w]
    if len(words) > config.max_hotwords:
        raise RequestRefused(400, f"At most {config.max_hotwords} hotwords per request.")
    if any(len(w) > _MAX_HOTWORD_LENGTH for w in words):
        raise RequestRefused(400, f"A hotword is longer than {_MAX_HOTWORD_LENGTH} characters.")
    return tuple(words)


def build_request(
    fields: dict[str, list[str]], audio: bytes | None, config: ServerConfig
) -> ParsedRequest:
    """Check every field and decode the audio; raises `RequestRefused`."""
    if not audio:
        raise RequestRefused(400, "The form has no 'file' field with audio in it.")
    response_format = _one(fields, "response_format", "json")
    if response_format not in RESPONSE_FORMATS:
        raise RequestRefused(400, f"response_format must be one of {', '.join(RESPONSE_FORMATS)}.")
    try:
        language = language_for(_one(fields, "language", "en")).code
    except ValueError as error:
        raise RequestRefused(400, str(error)) from None
    job = TranscriptionJob(
        decode_audio(audio, config.max_audio_seconds),
        language,
        _hotwords(fields, config),
        _flag(fields, "itn", True),
    )
    return ParsedRequest(job, response_format)


def decode_audio(data: bytes, max_seconds: float) -> np.ndarray[Any, np.dtype[np.float32]]:
    """16 kHz mono float32 from an uploaded file (any format the app reads from disk)."""
    import soundfile

    # A private temporary file, because the readers behind `prepare_audio` (libsndfile, then
    # librosa/audioread for the rest) work on paths; it is removed at once.
    handle, name = tempfile.mkstemp(prefix="nanodictate-upload-")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        try:
            seconds = soundfile.info(name).duration
        except Exception:
            seconds = None  # not a libsndfile format: `prepare_audio` tries the others
        if seconds is not None and seconds > max_seconds:
            raise RequestRefused(
                413,
                f"The audio is {seconds / 60:.1f} min; this server takes at most "
                f"{max_seconds / 60:g} min per request.",
            )
        try:
            return prepare_audio(Path(name), max_seconds=max_seconds)
        except AudioInputError as error:
            message = f"The file is not audio this server can read: {error}"
            raise RequestRefused(400, message) from None
    finally:
        os.unlink(name)


def audio_seconds(job: TranscriptionJob) -> float:
    return len(job.samples) / SAMPLE_RATE
