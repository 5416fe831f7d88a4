"""Packing a loaded INT8 model's CPU layers for FBGEMM after the load, in the background.

Why: FBGEMM's prepack is most of an INT8 load from the cache and cannot be kept — torch
saves a packed layer by unpacking it, and its packed layout can only be made by packing.
On the 2-core EPYC, full-size replica (`bench/reload.py`, `bench/reload_kernels.py`):

* prepacking the 409 matrices: 4.4–7 s of a 5.5–7 s reload, ≈130–190 MB/s;
* kernels that need no FBGEMM pack were slower to decode with: ``torch._int_mm`` on the
  unpacked rows 1268 ms per token against 564 ms for FBGEMM in the same (contended) run;
  oneDNN's ``qlinear_prepack`` packs in 0.6–1.0 s but its one-row kernel took 1.15 ms
  against 0.21 ms for the 6144×1024 gate/up matrix (5.5×), and 208 against 58 ms per token;
  the onednn quantized engine's ``linear_dynamic`` also keeps an unpacked copy (2× memory).

So the kernel stays, and the packing leaves the load: `weights.load_int8_weights` makes the
layers unpacked, and one thread packs them here in model order (encoder first, the head
last) while the load finishes, the VAD loads and the user speaks (the app loads at
key-down). A layer needed before the thread reached it is packed by its caller; whichever
comes first packs it, once.

Memory: the thread keeps only weak references and trims the heap as the load did, so what it
allocated comes back at unload. An unload stops it and waits for the layer it is packing
(`stop_packing`), and so does the interpreter's exit: a process that ends while a thread is
inside FBGEMM's prepack aborts ("terminate called without an active exception"), which in the
app's engine process would look like a crash.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections.abc import Iterable

from torch import nn

from nanodictate.core.asr.int8 import DynamicInt8Linear
from nanodictate.core.asr.memory import trim_heap

log = logging.getLogger(__name__)

# Background packing waits until no layer has multiplied for this long. Packing beside a
# transcription made it 2.2× slower (19.1 s against 8.6 s for reload then 5 s of speech):
# a third busy thread on 2 cores stalls torch's two compute threads at every barrier. Paused,
# the transcription packs what it needs itself, one layer at a time, between its own calls.
QUIET_BEFORE_PACKING_S = 0.1

# Each prepack leaves a freed temporary between long-lived packed weights; without trimming,
# that fragmentation alone added ≈0.5 GB to the peak.
_TRIM_EVERY = 32


def unpacked_layers(model: nn.Module) -> list[DynamicInt8Linear]:
    """The model's CPU int8 layers not packed yet, in model order."""
    return [m for m in model.modules() if isinstance(m, DynamicInt8Linear) and not m.is_packed]


# The packing threads running, each with the event that stops it.
_running: dict[threading.Thread, threading.Event] = {}


def pack_in_background(layers: Iterable[DynamicInt8Linear]) -> threading.Thread:
    """Start a daemon thread that packs ``layers`` in order; it ends when all are packed or
    dropped, or when `stop_packing` is called."""
    references = [weakref.ref(layer) for layer in layers]
    stop = threading.Event()

    def pack_all_alive() -> None:
        started = time.perf_counter()
        for index, reference in enumerate(references):
            _wait_for_quiet(stop)
            layer = reference()
            if stop.is_set():
                return
            if layer is None:
                continue
            try:
                layer.pack()
            except (MemoryError, RuntimeError) as error:
                # Out of memory here is no one's error yet: the layers left unpacked are
                # packed by the transcription that needs them, which reports it to the user.
                log.warning("INT8 background packing stopped: %s", type(error).__name__)
                return
            del layer
            if index % _TRIM_EVERY == _TRIM_EVERY - 1:
                trim_heap()
        trim_heap()
        log.info("INT8 layers packed in %.1f s", time.perf_counter() - started)

    def run() -> None:
        try:
            pack_all_alive()
        finally:
            _running.pop(threading.current_thread(), None)

    thread = threading.Thread(target=run, name="int8-packing", daemon=True)
    _running[thread] = stop
    thread.start()
    return thread


def stop_packing() -> None:
    """Stop every packing thread after the layer it is packing, and wait for it."""
    for thread, stop in list(_running.items()):
        stop.set()
        thread.join()


atexit.register(stop_packing)


def _wait_for_quiet(stop: threading.Event) -> None:
    while (quiet := time.monotonic() - DynamicInt8Linear.last_call) < QUIET_BEFORE_PACKING_S:
        if stop.wait(QUIET_BEFORE_PACKING_S - quiet):
            return


def pack_now(model: nn.Module) -> None:
    """Pack every layer still unpacked in the calling thread (waiting for any that the
    background thread is packing): a model that will not pack again during a decode."""
    for layer in unpacked_layers(model):
        layer.pack()
