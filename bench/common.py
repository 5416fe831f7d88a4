"""What the benchmark scripts share: the machine they ran on and the full-size replica."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else what Python knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_basics() -> dict[str, Any]:
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def full_replica() -> Path:
    """The full-size replica (829.8 M parameters, random weights), built once into the user
    cache folder (≈20 s, ≈2 GB on disk) and reused by every later run."""
    from platformdirs import user_cache_dir

    from nanodictate.testing.replica import build_replica

    folder = Path(user_cache_dir("nanodictate-bench")) / "replica-full"
    if not (folder / "model.pt").is_file():
        print(f"building the full-size replica in {folder} (once)…", file=sys.stderr)
        build_replica(folder, full=True)
    return folder
