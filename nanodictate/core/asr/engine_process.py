"""The engine in a child process: a crash in native code ends the child, never the app.

torch, funasr and the kaldi-native-fbank / FBGEMM / CUDA libraries under them run native code
that can die with a signal. In the app's own process that takes the tray, the recording and
every pending dictation with it. Here the `Engine` runs in a child process started at the first
load; `EngineProcess` offers the same calls (load, transcribe, unload, offload, memory_report,
state) and forwards them through the child's stdin and stdout. When the child dies mid-call,
the call raises `EngineCrashedError`; the next call starts a fresh child.

`unload` ends the child: every byte of RAM and GPU memory it held goes back to the system,
the CUDA context and the ≈0.5 GB that importing torch and funasr costs included, which an
in-process unload cannot give back. The parent never imports torch or funasr.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import pickle
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from nanodictate.core.asr.placement import Placement
from nanodictate.core.errors import EngineCrashedError, NanodictateError, OutOfMemoryError
from nanodictate.core.live_segments import LiveStep
from nanodictate.core.transcriber import (
    Capabilities,
    DeviceChoice,
    EngineState,
    LoadReport,
    MemoryReport,
    Precision,
    Transcription,
)

log = logging.getLogger(__name__)

# How long the child gets to unload and exit on its own before it is killed.
_EXIT_GRACE_S = 10.0


@dataclass(frozen=True)
class EngineConfig:
    """What the child needs to build its `Engine` (sent to it, so plain values only)."""

    model_dir: Path
    vad_dir: Path | None
    cache_dir: Path
    threads: int | None = None
    decode_tokens: int | None = None


class EngineProcess:
    """The `Engine` as a `Transcriber`, served by a child process that lives from load to
    unload. Driven from one thread (the app's engine QThread), like `Engine`."""

    capabilities = Capabilities(
        can_offload=True, partial_text=True, remote=False, unload_frees_process=True
    )

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.on_state_change: Callable[[EngineState], None] | None = None
        self._state = EngineState.UNLOADED
        self._process: subprocess.Popen[bytes] | None = None
        self._placement: Placement | None = None
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ state

    @property
    def state(self) -> EngineState:
        return self._state

    @property
    def placement(self) -> Placement | None:
        return self._placement

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs (for tests and the log)."""
        process = self._process
        return None if process is None or process.poll() is not None else process.pid

    def _set_state(self, state: EngineState) -> None:
        if state is self._state:
            return
        self._state = state
        if self.on_state_change is not None:
            self.on_state_change(state)

    # ------------------------------------------------------------------ the Engine API

    def load(
        self,
        precision: Precision | str = Precision.INT8,
        device: DeviceChoice | str = DeviceChoice.AUTO,
    ) -> LoadReport:
        report: LoadReport = self._call("load", Precision(precision), DeviceChoice(device))
        self._placement = Placement(
            report.precision,
            report.device,
            report.fallback_reason,
            report.compute_dtype,
            report.compute_note,
        )
        return report

    def transcribe(
        self,
        audio: np.ndarray[Any, Any] | str | os.PathLike[str],
        sample_rate: int | None = None,
        *,
        language: str = "en",
        hotwords: Sequence[str] = (),
        itn: bool = True,
    ) -> Transcription:
        if self._process is None:
            from nanodictate.core.errors import EngineStateError

            raise EngineStateError("The speech model is not loaded.")
        result: Transcription = self._call(
            "transcribe",
            audio,
            sample_rate,
            language=language,
            hotwords=tuple(hotwords),
            itn=itn,
        )
        return result

    def transcribe_settled(
        self,
        audio: np.ndarray[Any, Any],
        *,
        language: str = "en",
        hotwords: Sequence[str] = (),
        itn: bool = True,
        guess_open: bool = False,
    ) -> LiveStep:
        """`Engine.transcribe_settled` in the child; never starts one (nor loads a model)."""
        if self._process is None:
            from nanodictate.core.errors import EngineStateError

            raise EngineStateError("The speech model is not loaded.")
        result: LiveStep = self._call(
            "transcribe_settled",
            audio,
            language=language,
            hotwords=tuple(hotwords),
            itn=itn,
            guess_open=guess_open,
        )
        return result

    def offload(self) -> bool:
        if self._process is None:
            return False
        return bool(self._call("offload"))

    def memory_report(self) -> MemoryReport:
        """The child's figures (what the model costs); zeros when no child runs."""
        if self._process is None:
            return MemoryReport(process_rss=0, model_cpu_bytes=0, model_gpu_bytes=0)
        report: MemoryReport = self._call("memory_report")
        return report

    def unload(self) -> None:
        """End the child, so that all it held goes back to the system."""
        with self._lock:
            process, self._process, self._placement = self._process, None, None
            if process is not None:
                with contextlib.suppress(OSError, ValueError):
                    self._send(process, ("exit", (), {}))
                try:
                    process.wait(_EXIT_GRACE_S)
                except subprocess.TimeoutExpired:
                    log.warning("The engine process did not exit in time; killing it")
                    process.kill()
                    process.wait()
                _close_pipes(process)
                log.info("Engine process %s ended", process.pid)
            self._set_state(EngineState.UNLOADED)

    # ------------------------------------------------------------------ the pipe

    def _start(self) -> subprocess.Popen[bytes]:
        # A fresh interpreter running this module, not multiprocessing: its spawn re-imports
        # the parent's main script in the child, which is fragile for any host script, and a
        # fork of a process with Qt and PortAudio threads running may inherit held locks.
        process = subprocess.Popen(
            [sys.executable, "-m", __name__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),  # Windows: no console
        )
        self._process = process
        log.info("Engine process %s started", process.pid)
        self._send(process, (self.config, _log_settings()))
        return process

    @staticmethod
    def _send(process: subprocess.Popen[bytes], message: Any) -> None:
        assert process.stdin is not None
        pickle.dump(message, process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        process.stdin.flush()

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            process = self._process or self._start()
            try:
                self._send(process, (method, args, kwargs))
                return self._wait_for_result(process)
            except (EOFError, OSError, pickle.UnpicklingError):
                raise self._crashed(method) from None

    def _wait_for_result(self, process: subprocess.Popen[bytes]) -> Any:
        assert process.stdout is not None
        while True:
            # EOF as soon as the child dies: it alone holds the other end of the pipe.
            kind, value = pickle.load(process.stdout)
            if kind == "state":
                self._set_state(EngineState(value))
            elif kind == "result":
                return value
            else:  # "error": the engine raised; the child lives on
                raise value

    def _crashed(self, method: str) -> EngineCrashedError:
        process, self._process, self._placement = self._process, None, None
        cause = "it was ended from outside"
        if process is not None:
            try:
                process.wait(_EXIT_GRACE_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            _close_pipes(process)
            cause = _describe_exit(process.returncode)
        log.error("The engine process died during %s: %s", method, cause)
        self._set_state(EngineState.UNLOADED)
        return EngineCrashedError(f"The speech engine stopped unexpectedly ({cause}).")


def _close_pipes(process: subprocess.Popen[bytes]) -> None:
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "it stopped answering"
    if exitcode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-exitcode).name}"
        return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


# ---------------------------------------------------------------------- the child


@dataclass(frozen=True)
class _LogSettings:
    level: int
    log_files: tuple[str, ...]


def _log_settings() -> _LogSettings:
    """The parent's logging, so that the child writes to the same places at the same level."""
    root = logging.getLogger()
    files = tuple(
        handler.baseFilename
        for handler in root.handlers
        if isinstance(handler, logging.FileHandler)
    )
    return _LogSettings(root.getEffectiveLevel(), files)


def _configure_child_logging(settings: _LogSettings) -> None:
    from nanodictate.log_setup import configure_logging

    verbosity = 2 if settings.level <= logging.DEBUG else 1 if settings.level <= logging.INFO else 0
    configure_logging(verbosity, Path(settings.log_files[0]) if settings.log_files else None)


def _end_with_parent() -> None:
    """Linux: the kernel ends the child when the app dies, even by SIGKILL.

    Elsewhere the child ends when it next reads from the closed pipe.
    """
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


def _sendable(error: BaseException) -> BaseException:
    """The error itself when it survives pickling, else one that carries its gist."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error


def serve(requests: BinaryIO, replies: BinaryIO) -> None:
    """The child's main loop: build the Engine, answer calls until told to exit."""
    _end_with_parent()
    config, log_settings = pickle.load(requests)
    _configure_child_logging(log_settings)
    from nanodictate.core.asr.engine import Engine

    engine = Engine(
        config.model_dir,
        vad_dir=config.vad_dir,
        cache_dir=config.cache_dir,
        threads=config.threads,
        decode_tokens=config.decode_tokens,
    )

    def reply(message: tuple[str, Any]) -> None:
        pickle.dump(message, replies, protocol=pickle.HIGHEST_PROTOCOL)
        replies.flush()

    engine.on_state_change = lambda state: reply(("state", state.value))
    while True:
        try:
            method, args, kwargs = pickle.load(requests)
        except (EOFError, OSError):
            break  # the app is gone
        except MemoryError:
            # The request (a long recording) did not fit. The rest of it is still in the
            # pipe, so this process cannot read on: say why and end; the next call starts anew.
            reply(
                (
                    "error",
                    OutOfMemoryError(
                        "There was not enough free memory to receive the recording. "
                        "Close other programs and try again."
                    ),
                )
            )
            break
        if method == "exit":
            break
        try:
            result = getattr(engine, method)(*args, **kwargs)
        except Exception as error:
            if not isinstance(error, NanodictateError):
                log.exception("Engine %s failed", method)
            reply(("error", _sendable(error)))
        else:
            reply(("result", result))
    engine.on_state_change = None
    engine.unload()


def _main() -> None:
    # The replies get stdout's pipe to themselves; anything printed (funasr prints, and
    # native code may too) goes to stderr instead of corrupting the stream.
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(sys.stdin.buffer, replies)


if __name__ == "__main__":
    _main()
