"""Work off the GUI thread, its outcome back on it — the one way the UI runs slow calls.

In the spirit of Anki's QueryOp: `lane.run(work, on_done)` calls `work()` on the lane's own
thread and then `on_done(result)` on the GUI thread; `work` must not touch widgets. A lane
runs its jobs one after another, in order (pastes must never overlap). The app has two: the
paste (`ui.delivery`) and the model download (`ui.model_download`). The engine keeps its own
long-lived worker (`ui.worker`): it owns state that must stay on one thread.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QCoreApplication, QEventLoop, QObject, Qt, Signal, Slot

log = logging.getLogger(__name__)


class BackgroundLane(QObject):
    _finished = Signal(object, object)  # on_done, result

    def __init__(self, name: str, executor: concurrent.futures.Executor | None = None) -> None:
        super().__init__()
        self.name = name
        self._executor = executor or concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"nanodictate-{name}"
        )
        self.running = 0  # jobs submitted whose on_done has not run yet
        self._finished.connect(self._deliver, Qt.ConnectionType.QueuedConnection)

    def run(self, work: Callable[[], Any], on_done: Callable[[Any], None]) -> None:
        """`work()` on the lane's thread; `on_done(result)` on the GUI thread. An exception
        in `work` is logged and ends the job without calling `on_done`: catch what you expect
        in `work` and return it as the result."""
        self.running += 1

        def job() -> None:
            try:
                result = work()
            except Exception:
                log.exception("Background job on %s failed", self.name)
                self._finished.emit(None, None)
                return
            self._finished.emit(on_done, result)

        self._executor.submit(job)

    @Slot(object, object)
    def _deliver(self, on_done: Callable[[Any], None] | None, result: Any) -> None:
        self.running -= 1
        if on_done is not None:
            on_done(result)

    def shutdown(self, wait_s: float) -> None:
        """Let running jobs finish, serving the GUI thread meanwhile (they may need it, as a
        paste needs the clipboard), for at most `wait_s`; then stop the lane."""
        deadline = time.monotonic() + wait_s
        while self.running and time.monotonic() < deadline:
            QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        self._executor.shutdown(wait=True, cancel_futures=False)
