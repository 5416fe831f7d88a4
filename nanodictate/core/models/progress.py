"""Download progress: what a download reports, where a cancel takes effect, how the CLI draws it.

`DownloadProgress` is the one value the tray, the download dialog and the CLI receive. A
`Meter` turns the byte counts the hub libraries report (through the adapters in hubs.py) into
those values, at most one every 0.1 s apart from the final one.

Cancel: neither hub library can be cancelled. Their progress hooks call `Meter.advance`, which
raises `Cancelled` once the event is set; like asyncio.CancelledError it derives from
BaseException, so the libraries' `except Exception` retry loops let it through. The event is
also checked between files (`Meter.check`).

`terminal_progress` is the CLI's callback: a tqdm bar on a terminal, plain lines on a pipe.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

_PROGRESS_INTERVAL_S = 0.1


@dataclass(frozen=True)
class DownloadProgress:
    file: str  # the path inside the model folder being transferred
    file_done: int
    file_total: int
    done: int  # bytes of the whole model on disk so far, resumed parts included
    total: int

    @property
    def fraction(self) -> float:
        return 1.0 if self.total <= 0 else min(1.0, self.done / self.total)


class Cancelled(BaseException):
    """Raised from a library's progress hook to stop it; not an Exception, so not retried."""


class Meter:
    """Turns the libraries' byte counts into DownloadProgress; raises Cancelled on cancel."""

    def __init__(
        self, callback: Callable[[DownloadProgress], None] | None, cancel: threading.Event | None
    ) -> None:
        self.callback, self.cancel = callback, cancel
        self.done = self.total = 0  # whole model
        self.file, self.file_total, self.file_done, self.base = "", 0, 0, 0
        self.last_emit = float("-inf")

    def check(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled

    def start(self, path: str, size: int, offset: int) -> None:
        self.file, self.file_total, self.file_done = path, size, offset
        self.base = self.done - offset  # `done` already counts a resumed part

    def advance(self, count: int) -> None:
        self.check()
        self.file_done += count
        self.done = self.base + self.file_done
        self.emit(self.file_done)

    def file_finished(self, size: int) -> None:
        self.done = self.base + size

    def emit(self, file_done: int, *, force: bool = False) -> None:
        now = time.monotonic()
        if self.callback is None or (not force and now - self.last_emit < _PROGRESS_INTERVAL_S):
            return
        self.last_emit = now
        self.callback(
            DownloadProgress(self.file, file_done, self.file_total, self.done, self.total)
        )


# --- terminal progress ------------------------------------------------------------------------


class TerminalProgress:
    """A tqdm bar on a terminal; on a pipe, one plain line (tqdm's format) every 10%."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.interactive = bool(getattr(stream, "isatty", lambda: False)())
        self.bar: Any = None
        self.started = 0.0
        self.start_done = 0
        self.next_decile = 0

    def __call__(self, update: DownloadProgress) -> None:
        from tqdm import tqdm

        name = update.file.rsplit("/", 1)[-1][:28]
        finished = update.total > 0 and update.done >= update.total
        if self.interactive:
            if self.bar is None:
                # Resumed bytes count as `initial`, so they do not inflate the speed.
                self.bar = tqdm(
                    total=update.total,
                    initial=update.done,
                    file=self.stream,
                    unit="B",
                    unit_scale=True,
                    dynamic_ncols=True,
                    leave=True,
                )
            self.bar.total = update.total
            self.bar.set_postfix_str(name, refresh=False)
            self.bar.update(update.done - self.bar.n)
            if finished:
                self.finish()
            return
        now = time.monotonic()
        if not self.started:
            self.started, self.start_done = now, update.done
        percent = int(update.fraction * 100)
        if finished or percent >= self.next_decile:
            line = tqdm.format_meter(
                update.done,
                update.total,
                now - self.started,
                unit="B",
                unit_scale=True,
                initial=self.start_done,
                postfix=name,
            )
            self.stream.write(line + "\n")
            self.stream.flush()
            self.next_decile = percent // 10 * 10 + 10

    def finish(self) -> None:
        """End the progress line (call it when a download stops early too)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def terminal_progress(stream: IO[str] | None = None) -> TerminalProgress:
    """A progress callback for the CLI that draws one updating bar on `stream` (stderr)."""
    return TerminalProgress(sys.stderr if stream is None else stream)
