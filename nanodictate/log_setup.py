"""Logging for the CLI and the tray app: ours at the chosen level, libraries kept quiet.

Dictated text is never logged: no code path passes it to a logger.
"""

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

_NOISY_LIBRARIES = ("funasr", "modelscope", "transformers", "numba", "urllib3", "jieba")


class _QuietLibraries(logging.Filter):
    """Drop library chatter below WARNING, and what funasr logs through the root logger below
    ERROR (e.g. "trust_remote_code: False" on every model load) unless the handler shows DEBUG.

    funasr calls go through `funasr_runtime.quiet()`, which already moves those records to our
    debug log; this is the safety net for anything funasr logs outside it.
    """

    def __init__(self, show_library_warnings: bool = False) -> None:
        super().__init__()
        self.show_library_warnings = show_library_warnings

    def filter(self, record: logging.LogRecord) -> bool:
        from_funasr_root = record.name == "root" and "/funasr/" in record.pathname.replace(
            "\\", "/"
        )
        if from_funasr_root and record.levelno < logging.ERROR:
            return self.show_library_warnings and record.levelno >= logging.WARNING
        if record.levelno >= logging.WARNING:
            return True
        return not record.name.startswith(_NOISY_LIBRARIES)


def configure_logging(verbosity: int = 0, log_file: Path | None = None) -> None:
    """stderr at WARNING (INFO with -v, DEBUG with -vv) and, optionally, a log file at INFO."""
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(verbosity, 2)]
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    handlers[0].setLevel(level)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(log_file, encoding="utf-8")
        file_handler.setLevel(min(level, logging.INFO))
        handlers.append(file_handler)
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(_QuietLibraries(show_library_warnings=handler.level <= logging.DEBUG))
        root.addHandler(handler)
    root.setLevel(min(h.level for h in handlers))


def verbosity(argv: Sequence[str]) -> int:
    """How many -v / --verbose the arguments hold ("-vv" counts two)."""
    count = 0
    for arg in argv:
        if arg == "--verbose":
            count += 1
        elif arg.startswith("-") and not arg.startswith("--") and set(arg[1:]) == {"v"}:
            count += len(arg) - 1
    return count
