"""What the user is told when a dictation meets a problem: titles and messages, one place.

Messages say what happened and what is safe; they never hold dictated text.
"""

from __future__ import annotations

from nanodictate.core.errors import ModelMissingError, NanodictateError, OutOfMemoryError
from nanodictate.core.recorder import StopReason

UNEXPECTED = "An unexpected error happened; the log has the details."
KEPT = " Your recording is kept and will be offered again when nanodictate starts."


def explain(error: BaseException) -> str:
    """Our errors carry a message for the user; anything else is a bug, told as such."""
    return str(error) if isinstance(error, NanodictateError) else UNEXPECTED


def reason(error: BaseException) -> str:
    """A short cause: "database or disk is full", "Permission denied"."""
    return str(getattr(error, "strerror", None) or error or type(error).__name__)


def load_failed(error: BaseException, *, recording_kept: bool) -> tuple[str, str]:
    """(title, message) for a model that could not be loaded."""
    message = explain(error) + (KEPT if recording_kept else "")
    if isinstance(error, ModelMissingError):
        return "Speech model missing", message
    if isinstance(error, OutOfMemoryError):
        return "Not enough memory", message
    return "The speech model could not be loaded", message


def transcription_failed(error: BaseException, *, recording_kept: bool) -> str:
    return explain(error) + (KEPT if recording_kept else "")


def engine_restarting(error: BaseException) -> tuple[str, str]:
    return (
        "Speech engine restarted",
        f"{error} It was started again and is transcribing your recording again.",
    )


def history_not_saved(problem: str, *, pasted: bool) -> tuple[str, str]:
    where = "was pasted" if pasted else "could not be pasted; it is on the clipboard"
    return (
        "History not saved",
        f"The text {where}, but the history could not be written ({problem}).",
    )


def recording_stopped(stop: StopReason, max_seconds: float) -> tuple[str, str, str] | None:
    """(title, message, level) when a recording ended by itself, else None."""
    if stop is StopReason.MAX_LENGTH:
        return (
            "Recording stopped",
            f"The recording reached its maximum length ({max_seconds / 60:g} min); "
            "transcribing it.",
            "info",
        )
    if stop is StopReason.DEVICE_LOST:
        return (
            "Microphone lost",
            "The microphone stopped delivering sound; transcribing what was captured.",
            "warning",
        )
    return None


def recovery_offer(count: int) -> tuple[str, str]:
    what = f"{count} recordings" if count > 1 else "A recording"
    return (
        "Unfinished dictation",
        f"{what} from an earlier session could not be transcribed. Click here to transcribe "
        "now; the text goes to Recent (tray menu) and the clipboard.",
    )


def server_unreachable(url: str, reason: object) -> str:
    return (
        f"The transcription server {url} cannot be reached ({reason}). Check the network, or "
        "ask your server's admin; choose 'This computer' in the settings to work offline."
    )


def server_refused_token(url: str, detail: str) -> str:
    return f"The server {url} refused the token ({detail}). Check the server token in the settings."


def server_failed(url: str, detail: str) -> str:
    return f"The server {url} could not transcribe the recording: {detail}"


def server_fallback_local(url: str) -> tuple[str, str]:
    """(title, message) when dictations go to this computer's engine instead of the server."""
    return (
        "Transcribing on this computer",
        f"The transcription server {url} cannot be reached, so your dictations are "
        "transcribed on this computer until it answers again.",
    )
