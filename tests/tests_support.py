"""Small helpers shared by tests in several folders (pytest puts tests/ on sys.path)."""

from __future__ import annotations

import errno
from pathlib import Path


def fill_disk(folder: Path) -> None:
    """Write to `folder` until its file system is full (ENOSPC)."""
    with (folder / "filler").open("wb", buffering=0) as stream:
        block = b"\0" * 4096
        while True:
            try:
                if not stream.write(block):
                    return
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
                return


GIB = 2**30


class SimulatedMemory:
    """Free RAM and GPU memory as a test says (a `MemoryProbe`): the machines that need the
    placement's fallbacks cannot exist in CI."""

    def __init__(self, ram: int, cuda: int | None) -> None:
        self.ram, self.cuda = ram, cuda

    def available_ram(self) -> int:
        return self.ram

    def cuda_free(self) -> int | None:
        return self.cuda
