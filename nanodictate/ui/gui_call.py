"""Run a function on the GUI thread from a worker thread and wait for its result.

Qt objects such as QClipboard may only be used on the GUI thread, while the paste sequence
blocks (waits for keys, for the target to read the clipboard) and so runs on a worker. A
bounded wait instead of a BlockingQueuedConnection: if the GUI thread is itself waiting for
that worker (at quit), the worker times out instead of deadlocking.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from PySide6.QtCore import QObject, Qt, QThread, Signal

T = TypeVar("T")


class GuiCallTimeout(RuntimeError):
    pass


class GuiInvoker(QObject):
    """Create on the GUI thread; `call` from any thread."""

    _job = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._job.connect(self._run, Qt.ConnectionType.QueuedConnection)

    def _run(self, job: Callable[[], None]) -> None:
        job()

    def call(self, function: Callable[[], T], timeout: float = 2.0) -> T:
        if QThread.currentThread() == self.thread():
            return function()
        box: dict[str, Any] = {}
        done = threading.Event()

        def job() -> None:
            try:
                box["value"] = function()
            except BaseException as error:  # handed to the calling thread
                box["error"] = error
            finally:
                done.set()

        self._job.emit(job)
        if not done.wait(timeout):
            raise GuiCallTimeout("the GUI thread did not answer in time")
        if "error" in box:
            raise box["error"]
        return box["value"]  # type: ignore[no-any-return]
