"""Telling a failed allocation from other failures, however the engine reported it.

A load or a transcription that ran out of memory must reach the user as "not enough memory —
close other programs", not as "the model is damaged" or "an unexpected error": the first is
something they can act on, the others send them to download 2 GB again.
"""

from __future__ import annotations

import logging
import sys

from nanodictate.core.errors import NanodictateError, OutOfMemoryError

log = logging.getLogger(__name__)

# How a failed allocation reads when it does not arrive as MemoryError: torch's CPU allocator
# ("DefaultCPUAllocator: can't allocate memory"), a memory map or a thread that could not be
# made (errno ENOMEM, "Cannot allocate memory"), CUDA ("CUDA out of memory").
_MEMORY_SIGNS = ("can't allocate memory", "cannot allocate memory", "out of memory")
# Others say nothing of memory ("could not create a primitive", from oneDNN); so after any
# unexpected error the engine's state is looked at too: a process this close to its
# address-space limit (RLIMIT_AS, `ulimit -v`), or a machine with this little RAM left, failed
# for want of memory, whatever the message.
_ADDRESS_SPACE_HEADROOM = 64 * 2**20
_LOW_RAM = 128 * 2**20


def memory_error(error: BaseException, doing: str, pid: int) -> OutOfMemoryError | None:
    """A failed allocation, however the engine reported it, as an error the user can act on;
    None for any other error (and for an OutOfMemoryError, which already is one)."""
    if isinstance(error, OutOfMemoryError):
        return None
    if isinstance(error, MemoryError) or _says_memory(error):
        short = True
    elif _is_user_error(error):
        short = False  # its message for the user stands
    else:
        short = _memory_was_short(pid)
    if not short:
        return None
    return OutOfMemoryError(
        f"There was not enough free memory to {doing}. Close other programs and try again."
    )


def _says_memory(error: BaseException) -> bool:
    text = str(error).lower()
    return any(sign in text for sign in _MEMORY_SIGNS)


def _memory_was_short(pid: int) -> bool:
    """Whether the process `pid` is at its address-space limit (Linux), or the machine is
    nearly out of RAM."""
    import psutil

    try:
        if sys.platform.startswith("linux"):
            import resource

            limit, _hard = resource.prlimit(pid, resource.RLIMIT_AS)
            mapped = psutil.Process(pid).memory_info().vms
            if limit != resource.RLIM_INFINITY and mapped > limit - _ADDRESS_SPACE_HEADROOM:
                return True
        return bool(psutil.virtual_memory().available < _LOW_RAM)
    except (OSError, psutil.Error) as error:
        log.debug("Cannot tell whether memory was short: %s", error)
        return False


def _is_user_error(error: BaseException) -> bool:
    return isinstance(error, NanodictateError)
