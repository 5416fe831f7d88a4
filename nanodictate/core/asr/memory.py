"""How much memory the process and the model hold, and giving freed memory back to the OS.

torch is never imported here: the CUDA figures are read only when the engine has already
imported it (it is in ``sys.modules``), so the tray app at rest stays light.
"""

import ctypes
import ctypes.util
import functools
import gc
import logging
import sys
from dataclasses import dataclass
from typing import Any

import psutil

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CudaMemory:
    free: int
    total: int
    allocated: int  # by torch tensors
    reserved: int  # by torch's caching allocator (what other programs cannot use)


def process_rss() -> int:
    """Resident memory of this process in bytes."""
    return int(psutil.Process().memory_info().rss)


def available_ram() -> int:
    """RAM the OS could give us without swapping, in bytes."""
    return int(psutil.virtual_memory().available)


def _loaded_torch() -> Any | None:
    return sys.modules.get("torch")


def cuda_memory() -> CudaMemory | None:
    """CUDA memory figures, or None when torch is not loaded or there is no GPU."""
    torch = _loaded_torch()
    if torch is None or not torch.cuda.is_available():
        return None
    free, total = torch.cuda.mem_get_info()
    return CudaMemory(
        free=int(free),
        total=int(total),
        allocated=int(torch.cuda.memory_allocated()),
        reserved=int(torch.cuda.memory_reserved()),
    )


@functools.cache
def _libc() -> ctypes.CDLL | None:
    # find_library runs ldconfig in a subprocess: look it up once, not per call.
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name, use_errno=True)
    except OSError:
        return None


def trim_heap() -> bool:
    # glibc keeps freed heap pages mapped; after unloading a 2 GB model the RSS stays at
    # 1.9–2.4 GB until malloc_trim(0) hands them back (measured, see MODEL-NOTES.md).
    libc = _libc()
    try:
        trim = libc.malloc_trim if libc is not None else None
    except AttributeError:  # musl has no malloc_trim
        return False
    if trim is None:
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return bool(trim(0))


def release_freed_memory() -> None:
    """Collect garbage, empty torch's CUDA cache and return the freed heap to the OS."""
    gc.collect()
    torch = _loaded_torch()
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
        # cuBLAS keeps its workspace (32 MiB on an H200, measured) allocated in torch's cache
        # for as long as the process lives; empty_cache cannot return what is allocated.
        clear_workspaces = getattr(torch._C, "_cuda_clearCublasWorkspaces", None)
        if clear_workspaces is not None:
            clear_workspaces()
        torch.cuda.empty_cache()
    trim_heap()


_MADV_DONTNEED = 4


def drop_file_pages(address: int, length: int) -> None:
    """Unmap the resident pages of a read-only file mapping from this process.

    Loading reads the checkpoint through a memory map; every page read stays in our RSS
    until the whole map is closed. Dropping pages we have already copied keeps the load's
    peak near what the model finally holds. Only for clean pages of a file mapping: a later
    read simply faults the data back in from the file.
    """
    libc = _libc()
    if libc is None or length <= 0:
        return
    page = 4096
    start = (address + page - 1) // page * page
    end = (address + length) // page * page
    if end <= start:
        return
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    libc.madvise.restype = ctypes.c_int
    if libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), _MADV_DONTNEED):
        log.debug("madvise failed with errno %d", ctypes.get_errno())
