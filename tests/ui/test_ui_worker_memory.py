"""Out of memory as the engine's worker tells it: however a failed allocation reaches it (a
MemoryError, torch's allocator message, an errno, or a message that says nothing of memory
from a process at its limit), the user is told there was not enough memory; a load cut off by
it ends the engine's process, so the next load starts clean."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import psutil
import pytest
from ui_fakes import FakeEngine

from nanodictate.core.errors import ModelCorruptError, ModelMissingError, OutOfMemoryError
from nanodictate.core.memory_failures import memory_error
from nanodictate.ui.worker import EngineService, Failure, LoadRequest

TORCH_ALLOCATOR = (
    "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
    "you tried to allocate 753000 bytes. Error code 12 (Cannot allocate memory)"
)


@pytest.fixture
def idle_process() -> Iterator[psutil.Process]:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield psutil.Process(child.pid)
    finally:
        child.kill()
        child.wait()


@pytest.mark.parametrize(
    "error",
    [
        MemoryError(),
        RuntimeError(TORCH_ALLOCATOR),
        OSError(12, "Cannot allocate memory"),
        # What the engine said when the VAD's weights could not be allocated (its own
        # misreading: the files were fine).
        ModelCorruptError(f"The speech-detection model could not be loaded ({TORCH_ALLOCATOR})"),
    ],
)
def test_failed_allocations_are_told_as_not_enough_memory(error: BaseException) -> None:
    told = memory_error(error, "load the speech model", os.getpid())
    assert isinstance(told, OutOfMemoryError)
    assert str(told) == (
        "There was not enough free memory to load the speech model. Close other programs and "
        "try again."
    )


def test_other_errors_stay_what_they_are() -> None:
    assert memory_error(ModelMissingError("model.pt is missing"), "load", os.getpid()) is None
    assert memory_error(OutOfMemoryError("planned: 2 GiB needed"), "load", os.getpid()) is None
    assert memory_error(RuntimeError("could not create a primitive"), "load", os.getpid()) is None


def test_an_error_from_a_process_at_its_memory_limit_is_told_as_memory(
    idle_process: psutil.Process,
) -> None:
    """oneDNN's "could not create a primitive" names no cause; at the limit it is memory."""
    error = RuntimeError("could not create a primitive")
    assert memory_error(error, "transcribe", idle_process.pid) is None
    limit = idle_process.memory_info().vms
    resource.prlimit(idle_process.pid, resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))
    assert isinstance(
        memory_error(error, "transcribe", idle_process.pid),
        OutOfMemoryError,
    )


def test_a_load_cut_off_by_memory_ends_the_engine_process(qtbot: Any) -> None:
    engine = FakeEngine()
    engine.load_error = MemoryError()
    service = EngineService(lambda: engine)
    try:
        with qtbot.waitSignal(service.worker.load_failed, timeout=5000) as failed:
            service.submit(LoadRequest("int8", "cpu"))
        failure: Failure = failed.args[0]
        assert isinstance(failure.error, OutOfMemoryError)
        qtbot.waitUntil(lambda: engine.names()[-1] == "unload", timeout=5000)
    finally:
        service.stop()
