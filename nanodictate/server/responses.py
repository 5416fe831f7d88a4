"""The three answers OpenAI's transcription API gives, and its error shape."""

from __future__ import annotations

from typing import Any

from nanodictate.core.transcriber import Transcription


def body(result: Transcription, response_format: str, served_by: dict[str, Any]) -> Any:
    """A JSON-able dict, or a str for ``text``. ``served_by``: precision, device, batch size."""
    if response_format == "text":
        return result.text
    if response_format == "json":
        return {"text": result.text}
    return {
        "task": "transcribe",
        "language": result.language,
        "duration": round(result.audio_seconds, 3),
        "text": result.text,
        "segments": [
            {
                "id": index,
                "start": round(segment.start, 3),
                "end": round(segment.end, 3),
                "text": segment.text,
            }
            for index, segment in enumerate(result.segments)
        ],
        "nanodictate": {
            **served_by,
            "timings": {name: round(seconds, 4) for name, seconds in result.timings.items()},
        },
    }


def error(status: int, message: str) -> dict[str, Any]:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return {"error": {"message": message, "type": kind, "code": status}}
