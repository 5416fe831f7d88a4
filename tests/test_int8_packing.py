"""CPU int8 layers packed later: on first use, or by the background thread once the model
is quiet; the same results as packing at once, each layer packed exactly once."""

from __future__ import annotations

import gc
import subprocess
import sys
import threading
import time

import pytest
import torch

from nanodictate.core.asr import int8_packing
from nanodictate.core.asr.int8 import DynamicInt8Linear, quantize_rows


class CountingSource:
    """A pack source that counts its reads (and can hold a reader until released)."""

    def __init__(self, rows: int = 96, columns: int = 32, seed: int = 0):
        generator = torch.Generator().manual_seed(seed)
        self.weight = torch.randn(rows, columns, generator=generator)
        self.bias = torch.randn(rows, generator=generator)
        self.int8, self.scale = quantize_rows(self.weight)
        self.reads = 0
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        self.reads += 1
        self.gate.wait(timeout=10)
        return self.int8, self.scale, self.bias

    def layer(self) -> DynamicInt8Linear:
        return DynamicInt8Linear.unpacked(tuple(self.weight.shape), True, self)


@pytest.fixture
def quiet_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """No layer has multiplied lately, and the pause the packer waits for is short."""
    monkeypatch.setattr(int8_packing, "QUIET_BEFORE_PACKING_S", 0.05)
    monkeypatch.setattr(DynamicInt8Linear, "last_call", 0.0)


def test_an_unpacked_layer_packs_on_first_call_and_matches_one_packed_at_once() -> None:
    source = CountingSource()
    layer = source.layer()
    assert not layer.is_packed and source.reads == 0
    assert layer.packed_bytes == 96 * 32 + 4 * 96
    x = torch.randn(3, 32)
    eager = DynamicInt8Linear(source.int8, source.scale, source.bias)
    assert torch.equal(layer(x), eager(x))
    assert layer.is_packed and source.reads == 1
    layer(x)
    assert source.reads == 1
    assert "not packed" not in repr(layer)


def test_two_threads_asking_at_once_pack_the_layer_once() -> None:
    source = CountingSource()
    source.gate.clear()  # the first reader holds the lock until the gate opens
    layer = source.layer()
    results: list[list[object]] = []
    threads = [threading.Thread(target=lambda: results.append(layer.pack())) for _ in range(2)]
    for thread in threads:
        thread.start()
    time.sleep(0.05)
    source.gate.set()
    for thread in threads:
        thread.join(timeout=10)
    assert source.reads == 1
    assert len(results) == 2 and results[0] is results[1]


def test_the_background_thread_packs_every_layer_in_order(quiet_now: None) -> None:
    sources = [CountingSource(seed=seed) for seed in range(4)]
    layers = [source.layer() for source in sources]
    model = torch.nn.Sequential(*layers)
    assert int8_packing.unpacked_layers(model) == layers
    thread = int8_packing.pack_in_background(int8_packing.unpacked_layers(model))
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert all(layer.is_packed for layer in layers)
    assert [source.reads for source in sources] == [1, 1, 1, 1]
    assert int8_packing.unpacked_layers(model) == []


def test_background_packing_waits_while_the_layers_are_in_use(
    quiet_now: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    busy = CountingSource().layer()
    busy(torch.randn(1, 32))  # a transcription has begun
    waiting = CountingSource(seed=1)
    layer = waiting.layer()
    thread = int8_packing.pack_in_background([layer])
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:  # a transcription: calls keep coming
        busy(torch.randn(1, 32))
        time.sleep(0.01)
    assert waiting.reads == 0
    thread.join(timeout=10)  # the calls stopped: the thread packs
    assert waiting.reads == 1 and not thread.is_alive()


def test_a_model_dropped_before_packing_is_never_packed(
    quiet_now: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(DynamicInt8Linear, "last_call", time.monotonic() + 0.2)
    source = CountingSource()
    layer = source.layer()
    thread = int8_packing.pack_in_background([layer])
    del layer  # an unload while the packer waits
    gc.collect()
    thread.join(timeout=10)
    assert not thread.is_alive() and source.reads == 0


def test_pack_now_packs_what_is_left_in_the_calling_thread() -> None:
    sources = [CountingSource(seed=seed) for seed in range(3)]
    model = torch.nn.Sequential(*(source.layer() for source in sources))
    model[1].pack()
    int8_packing.pack_now(model)
    assert [source.reads for source in sources] == [1, 1, 1]
    assert int8_packing.unpacked_layers(model) == []


def test_stop_packing_waits_for_the_layer_being_packed_and_packs_no_more(
    quiet_now: None,
) -> None:
    """What an unload does: the thread finishes the layer it is in, then stops."""
    held = CountingSource()
    held.gate.clear()  # the first layer's read blocks until released
    layers = [held.layer(), CountingSource(seed=1).layer(), CountingSource(seed=2).layer()]
    thread = int8_packing.pack_in_background(layers)
    deadline = time.monotonic() + 10
    while held.reads == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    stopper = threading.Thread(target=int8_packing.stop_packing)
    stopper.start()
    time.sleep(0.1)
    assert stopper.is_alive()  # waiting for the layer being packed
    held.gate.set()
    stopper.join(timeout=10)
    assert not stopper.is_alive() and not thread.is_alive()
    assert [layer.is_packed for layer in layers] == [True, False, False]


def test_a_process_that_exits_while_layers_pack_ends_cleanly() -> None:
    """Exiting while a thread is inside FBGEMM's prepack aborted the process ("terminate
    called without an active exception", exit code 134): the exit now waits for it."""
    script = (
        "import torch\n"
        "from nanodictate.core.asr import int8_packing\n"
        "from nanodictate.core.asr.int8 import DynamicInt8Linear, quantize_rows\n"
        "q, s = quantize_rows(torch.randn(4096, 2048))\n"
        "layers = [DynamicInt8Linear.unpacked((4096, 2048), False, lambda: (q, s, None))\n"
        "          for _ in range(40)]\n"
        "int8_packing.pack_in_background(layers)\n"
        "import time; time.sleep(0.3)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()[-2000:]


def test_running_out_of_memory_while_packing_leaves_the_rest_to_their_callers(
    quiet_now: None,
) -> None:
    """The packer stops quietly; the layer is packed (and any error told) when it is used."""

    def no_memory() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        raise MemoryError

    source = CountingSource()
    failing = DynamicInt8Linear.unpacked(tuple(source.weight.shape), True, no_memory)
    later = source.layer()
    int8_packing.pack_in_background([failing, later]).join(timeout=10)
    assert not failing.is_packed and not later.is_packed
    assert torch.equal(later(torch.ones(1, 32)), later(torch.ones(1, 32)))
    assert later.is_packed


@pytest.mark.skipif(sys.platform != "linux", reason="address-space limits are Linux's")
@pytest.mark.parametrize("headroom_mb", [3, 6, 13, 20])
def test_packing_with_too_little_memory_raises_instead_of_crashing(headroom_mb: int) -> None:
    """FBGEMM's prepack writes through a null pointer when its allocation fails (a SIGSEGV
    at each of these headrooms before the reservation); now it is an ordinary error."""
    script = (
        "import resource, torch\n"
        "from nanodictate.core.asr.int8 import DynamicInt8Linear\n"
        "w = torch.randint(-127, 128, (3072, 1024), dtype=torch.int8)\n"
        "s = torch.rand(3072) / 64 + 1e-3\n"
        "layers = [DynamicInt8Linear.unpacked((3072, 1024), False, lambda: (w, s, None))\n"
        "          for _ in range(20)]\n"
        "size = int(open('/proc/self/statm').read().split()[0]) * resource.getpagesize()\n"
        f"limit = size + {headroom_mb} * 2**20\n"
        "resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))\n"
        "try:\n"
        "    for layer in layers:\n"
        "        layer.pack()\n"
        "except RuntimeError as error:\n"
        "    print('refused:', 'allocate' in str(error))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert done.stdout.decode().strip() == "refused: True"
