"""The engine's thread: one QObject owns the Engine and runs requests in order.

Requests (`ui.engine_requests`) go into a bounded queue (a dictation that cannot be queued is
refused at once rather than piling up behind a 10 s load); the worker drains it on its own
QThread, so the GUI never waits for torch. Results and state changes come back as signals
(queued to the GUI thread). Passes over a recording still going on (`core.live_segments`)
wait beside the queue, one at most, and run only when the queue is empty.

The idle timers live here too, on the worker thread, so an unload never races a transcription:
after each request the idle timer restarts; when it fires the model is unloaded — or, with
the two-tier option on a GPU, first moved to RAM (offload) and unloaded after a second, longer
wait (`OFFLOADED_FACTOR` × the idle time).
"""

from __future__ import annotations

import logging
import os
import queue
import time
from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, QThread, QTimer, Signal, Slot

from nanodictate.core.errors import EngineCrashedError, NanodictateError
from nanodictate.core.live_segments import LiveDictation, LiveJobs, LivePass, transcribe_rest
from nanodictate.core.memory_failures import memory_error
from nanodictate.core.transcriber import EngineState, LoadReport, Transcriber
from nanodictate.ui.engine_requests import (
    Failure,
    IdlePolicy,
    LoadRequest,
    QueueFull,
    Request,
    TranscribeDone,
    TranscribeRequest,
    UnloadRequest,
)

log = logging.getLogger(__name__)

MAX_PENDING = 8
OFFLOADED_FACTOR = 3
# "Unload immediately" waits this long after a transcription: the unload's garbage collection
# holds the GIL for a few hundred ms and would delay the paste that runs right then.
IMMEDIATE_UNLOAD_DELAY_MS = 1000
_CRASHED_WHILE_LOADING = (
    "The speech engine stopped unexpectedly while loading the model. It starts again with "
    "your next dictation; the log has the details."
)


class EngineWorker(QObject):
    """Lives on its own QThread; use `EngineService` from the GUI."""

    state_changed = Signal(object)  # EngineState
    loaded = Signal(object)  # LoadReport
    load_failed = Signal(object)  # Failure
    transcribed = Signal(object)  # TranscribeDone
    transcribe_failed = Signal(object)  # Failure
    engine_restarting = Signal(object)  # Failure: the engine crashed, the job is tried again
    memory_changed = Signal(object)  # MemoryReport or None
    idle_action = Signal(str)  # "offload" / "unload", for the log and tests
    live_updated = Signal(object)  # LiveUpdate: chunks settled while the user speaks

    drained = Signal()  # the queue is empty again: the worker waits for the next request

    _wake = Signal()
    _stop = Signal()

    def __init__(self, engine_factory: Callable[[], Transcriber], max_pending: int = MAX_PENDING):
        super().__init__()
        self._factory = engine_factory
        self._engine: Transcriber | None = None
        self._queue: queue.Queue[Request] = queue.Queue(maxsize=max_pending)
        self._policy = IdlePolicy(5, True)
        # Parented: they move to the worker thread with us, and fire there.
        self._idle = QTimer(self)
        self._idle.setSingleShot(True)
        self._idle.timeout.connect(self._on_idle)
        self._offloaded = QTimer(self)
        self._offloaded.setSingleShot(True)
        self._offloaded.timeout.connect(self._on_offloaded_idle)
        self._wake.connect(self._drain, Qt.ConnectionType.QueuedConnection)
        self._stop.connect(self.shutdown, Qt.ConnectionType.QueuedConnection)
        self.minute_ms = 60_000  # tests shrink a minute
        # Set (from any thread) while a dictation records: its transcription comes next, so
        # the idle timers must not unload the model meanwhile (see EngineLink.keep_loaded).
        self.keep_loaded = False
        # Transcription while the user speaks: passes wait in a slot of one, not the queue.
        self._live = LiveJobs()

    # ------------------------------------------------------------------ any thread

    def submit(self, request: Request) -> None:
        try:
            self._queue.put_nowait(request)
        except queue.Full:
            raise QueueFull("The speech engine is busy; try again in a moment.") from None
        self._wake.emit()

    def submit_live(self, request: LivePass) -> None:
        """A pass over the recording so far; it replaces one still waiting."""
        self._live.offer(request)
        self._wake.emit()

    def finish_live(self, job_id: int) -> None:
        """The dictation's recording ended (key-up or cancel): no more passes for it."""
        self._live.finish(job_id)

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    # ------------------------------------------------------------------ worker thread

    @property
    def engine(self) -> Transcriber:
        if self._engine is None:
            self._engine = self._factory()
            self._engine.on_state_change = self._emit_state
        return self._engine

    def _emit_state(self, state: EngineState) -> None:
        self.state_changed.emit(state)

    @Slot()
    def _drain(self) -> None:
        while True:
            try:
                request = self._queue.get_nowait()
            except queue.Empty:
                live = self._live.take()  # the queue first: key-ups and loads never wait
                if live is None:
                    self.drained.emit()
                    return
                self._live_pass(live)
                continue
            self._idle.stop()
            self._offloaded.stop()
            try:
                self._handle(request)
            except Exception:  # never let one request kill the thread
                log.exception("Engine request %s failed", type(request).__name__)
            self._arm_idle(preload=isinstance(request, LoadRequest))

    def _handle(self, request: Request) -> None:
        if isinstance(request, IdlePolicy):
            self._policy = request
        elif isinstance(request, LoadRequest):
            self._load(request.precision, request.device, job_id=None)
        elif isinstance(request, UnloadRequest):
            log.info("Unloading the model (%s)", request.reason)
            self.engine.unload()
            self._report_memory()
            if request.rebuild:
                self._engine = None
        else:
            self._transcribe(request)

    def _load(self, precision: str, device: str, job_id: int | None) -> LoadReport | None:
        """Load; a failure is reported (None returned), except a crash during a dictation's
        load, which `_transcribe` answers by trying once more."""
        engine = self.engine
        try:
            report = engine.load(precision, device)
        except EngineCrashedError:
            if job_id is not None:
                raise
            self.load_failed.emit(Failure(job_id, EngineCrashedError(_CRASHED_WHILE_LOADING)))
            return None
        except Exception as error:
            memory = memory_error(error, "load the speech model", _pid_of(engine))
            if memory is not None:
                log.warning("Loading the model ran out of memory: %s", error)
                # Half loaded (an import or a model cut off midway): the next load starts in a
                # fresh process, and this one's memory goes back to the system now.
                self._end_engine_process()
                error = memory
            elif not isinstance(error, NanodictateError):
                log.exception("Loading the model failed")
            self.load_failed.emit(Failure(job_id, error))
            return None
        self._live.device = report.device
        if report.seconds > 0:  # 0: it was loaded already
            self.loaded.emit(report)
        self._report_memory()
        return report

    def _live_pass(self, request: LivePass) -> None:
        try:
            update = self._live.run_pass(self.engine, request)
        except EngineCrashedError as crash:
            # Told as any crash; key-up starts a new process and transcribes what no pass
            # settled (the audio is the recorder's, so nothing is lost).
            log.warning("Engine crashed during a pass of job %d", request.job_id)
            self.engine_restarting.emit(Failure(request.job_id, crash))
            return
        if update is not None:
            self.live_updated.emit(update)

    def _transcribe(self, request: TranscribeRequest) -> None:
        """Transcribe (the tail after the chunks settled while the user spoke, if any); if
        the engine's process dies, start a new one and transcribe the whole recording."""
        settled = self._live.take_dictation(request.job_id)
        try:
            self._transcribe_once(request, settled)
        except EngineCrashedError as crash:
            log.warning("Engine crashed during job %d; restarting it once", request.job_id)
            self.engine_restarting.emit(Failure(request.job_id, crash))
            try:
                self._transcribe_once(request, None)
            except EngineCrashedError as again:
                self.transcribe_failed.emit(Failure(request.job_id, again))

    def _transcribe_once(self, request: TranscribeRequest, settled: LiveDictation | None) -> None:
        report = self._load(request.precision, request.device, job_id=request.job_id)
        if report is None:
            return
        try:
            result = transcribe_rest(
                self.engine,
                settled,
                request.audio,
                request.sample_rate,
                language=request.language,
                hotwords=request.hotwords,
                itn=request.itn,
            )
        except EngineCrashedError:
            raise
        except Exception as error:
            memory = memory_error(error, "transcribe the recording", _pid_of(self.engine))
            if memory is not None:
                log.warning("Transcription ran out of memory: %s", error)
                # Its memory goes back to the system now, and the next dictation gets a fresh
                # process: oneDNN kept failing ("could not create a primitive") in one that
                # had met the limit, after the limit was lifted.
                self._end_engine_process()
                error = memory
            elif not isinstance(error, NanodictateError):
                log.exception("Transcription failed")
            self.transcribe_failed.emit(Failure(request.job_id, error))
            return
        loaded_now = report if report.seconds > 0 else None
        self.transcribed.emit(
            TranscribeDone(request.job_id, result, loaded_now, time.monotonic() - request.submitted)
        )

    def _end_engine_process(self) -> None:
        try:
            self.engine.unload()
        except Exception:
            log.exception("Unloading after running out of memory failed")
        self._report_memory()

    def _report_memory(self) -> None:
        try:
            self.memory_changed.emit(self.engine.memory_report())
        except Exception:
            log.debug("memory_report failed", exc_info=True)
            self.memory_changed.emit(None)

    # ------------------------------------------------------------------ idle

    def _arm_idle(self, *, preload: bool = False) -> None:
        if self._engine is None or self._engine.state is EngineState.UNLOADED:
            return
        minutes = self._policy.minutes
        if minutes < 0:
            return
        if minutes == 0:
            # After a load at key-down, wait for the recording's transcription (unloading now
            # would make it load again; a cancelled dictation unloads through the controller,
            # this timer is the safety net).
            self._idle.start(self.minute_ms if preload else IMMEDIATE_UNLOAD_DELAY_MS)
            return
        self._idle.start(minutes * self.minute_ms)

    @Slot()
    def _on_idle(self) -> None:
        engine = self._engine
        if engine is None or not self._queue.empty():
            return  # a request is waiting: it will re-arm the timer
        if self.keep_loaded:
            self._idle.start()  # a recording runs; look again after the same time
            return
        if self._policy.two_tier and self._policy.minutes != 0 and engine.offload():
            log.info("Idle: model moved from the GPU to RAM")
            self.idle_action.emit("offload")
            self._report_memory()
            self._offloaded.start(max(1, self._policy.minutes) * OFFLOADED_FACTOR * self.minute_ms)
            return
        log.info("Idle: unloading the model")
        engine.unload()
        self.idle_action.emit("unload")
        self._report_memory()

    @Slot()
    def _on_offloaded_idle(self) -> None:
        engine = self._engine
        if engine is None or not self._queue.empty():
            return
        if self.keep_loaded:
            self._offloaded.start()
            return
        log.info("Idle: unloading the model from RAM")
        engine.unload()
        self.idle_action.emit("unload")
        self._report_memory()

    # ------------------------------------------------------------------ shutdown

    @Slot()
    def shutdown(self) -> None:
        self._idle.stop()
        self._offloaded.stop()
        if self._engine is not None:
            try:
                self._engine.unload()
            except Exception:
                log.exception("Unloading at exit failed")
        # Quit from here, after the unload: a quit() from the GUI thread could end the event
        # loop before this slot ran.
        thread = self.thread()
        if thread is not None:
            thread.quit()


def _pid_of(engine: Transcriber | None) -> int:
    """The process the engine runs in: its own worker process, or this one."""
    pid = getattr(engine, "pid", None)
    return pid if isinstance(pid, int) else os.getpid()


class EngineThread(QThread):
    """A QThread that keeps one Python thread state for its whole life.

    A plain QThread runs its event loop in C++: PySide6 creates a Python thread state for each
    slot call and deletes it when the slot returns. pybind11 modules (kaldi-native-fbank, which
    funasr's frontend and the FSMN-VAD call) remember the thread state that was current when
    their internals were created; a later slot then hands that freed state back to CPython and
    the app dies with SIGSEGV (pybind11 issue 2888, fixed upstream in pull request 5870, not
    in the kaldi-native-fbank wheels we get). It struck when the model finished loading in one
    request and the first transcription came in the next — a long first dictation.
    Running the event loop from a Python ``run`` keeps the thread state alive between slots.
    """

    def run(self) -> None:
        self.exec()


class EngineService(QObject):
    """Starts the worker's thread and stops it cleanly (GUI side)."""

    def __init__(self, engine_factory: Callable[[], Transcriber], max_pending: int = MAX_PENDING):
        super().__init__()
        self.thread_ = EngineThread()
        self.thread_.setObjectName("nanodictate-engine")
        self.worker = EngineWorker(engine_factory, max_pending)
        self.worker.moveToThread(self.thread_)
        self.thread_.start()

    def submit(self, request: Request) -> None:
        self.worker.submit(request)

    def stop(self, timeout_ms: int = 10_000) -> None:
        if not self.thread_.isRunning():
            return
        # Unload on the worker thread (the engine belongs to it), then end the thread. A queued
        # signal, not QTimer.singleShot to the worker: from another thread that sometimes
        # never fired, and the thread then outlived its QThread object (a crash).
        self.worker._stop.emit()
        if not self.thread_.wait(timeout_ms):
            log.warning("The engine thread did not stop in time; ending its event loop")
            self.thread_.quit()
            self.thread_.wait(timeout_ms)
