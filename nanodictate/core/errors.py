"""Errors the user can act on.

Each carries a message written for the user; the CLI prints it and the tray app shows it as
a notification. Anything else is a bug and goes to the log with its traceback.
"""


class NanodictateError(Exception):
    """An error whose message is meant for the user, not a developer."""


class ModelMissingError(NanodictateError):
    """The model folder (or a file in it) does not exist."""


class ModelCorruptError(NanodictateError):
    """The model folder exists but a file is truncated, unreadable or wrong."""


class DownloadError(NanodictateError):
    """A model download failed (network, hub, disk)."""


class AudioInputError(NanodictateError):
    """The audio given to the engine cannot be transcribed."""


class OutOfMemoryError(NanodictateError):
    """Not even the leanest precision and device fit in the memory that is free."""


class EngineStateError(NanodictateError):
    """The engine was asked to do something its state does not allow."""


class EngineCrashedError(NanodictateError):
    """The engine's process ended while it worked (a crash in native code, or killed)."""
