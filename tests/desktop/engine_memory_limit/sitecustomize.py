"""TEST HOOK for the simulated out-of-memory tests (tests/desktop/test_app_faults_system.py).

Put this folder on PYTHONPATH and point NANODICTATE_TEST_ENGINE_MEMORY_LIMIT at a file. Each
engine process (`python -m nanodictate.core.asr.engine_process`) that starts while the file
exists reads it once; `open:<end of a path>` caps the process's address space (RLIMIT_AS) at
what it has mapped when it first opens a file whose path ends so. Every later allocation that
needs new memory then fails, as when the machine's memory is used up with overcommit off.
Other processes, the app among them, only import this and do nothing. Delete the file to
lift the limit for engine processes started after.
"""

from __future__ import annotations

import os
import sys
from typing import Any

LIMIT_ENV = "NANODICTATE_TEST_ENGINE_MEMORY_LIMIT"
ENGINE_MODULE = "nanodictate.core.asr.engine_process"


def _mapped_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _install() -> None:
    path = os.environ.get(LIMIT_ENV)
    if not path or ENGINE_MODULE not in sys.orig_argv:
        return
    try:
        with open(path) as spec:
            kind, _, suffix = spec.read().strip().partition(":")
    except FileNotFoundError:
        return  # lifted
    if kind != "open" or not suffix:
        raise ValueError(f"{path}: expected open:<end of a path>")
    fired = False

    def hook(event: str, args: tuple[Any, ...]) -> None:
        nonlocal fired
        if fired or event != "open" or not str(args[0]).endswith(suffix):
            return
        fired = True
        import resource

        cap = _mapped_bytes()
        resource.setrlimit(resource.RLIMIT_AS, (cap, resource.RLIM_INFINITY))
        print(
            f"[test hook] engine process {os.getpid()}: memory capped at {cap >> 20} MB "
            f"on opening {args[0]}",
            file=sys.stderr,
            flush=True,
        )

    sys.addaudithook(hook)


_install()
