"""What the benchmark scripts share: the machine they ran on, the full-size replica, and the
memory figures of a measuring process."""

from __future__ import annotations

import os
import platform
import resource
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

    # Named by layout: a folder from before the release-shaped replica is not reused.
    folder = Path(user_cache_dir("nanodictate-bench")) / "replica-full-release"
    if not (folder / "model.pt").is_file():
        print(f"building the full-size replica in {folder} (once)…", file=sys.stderr)
        build_replica(folder, full=True)
    return folder


def _nvidia_smi(*query: str) -> list[list[str]] | None:
    """Rows of an ``nvidia-smi --query-…`` in CSV, or None where there is no nvidia-smi."""
    import shutil
    import subprocess

    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    done = subprocess.run(
        [exe, *query, "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if done.returncode != 0:
        return None
    return [[cell.strip() for cell in line.split(",")] for line in done.stdout.splitlines() if line]


def gpu_memory_of_processes() -> dict[int, int] | None:
    """Bytes of GPU memory each process holds, as the driver (nvidia-smi) sees it: this
    includes the CUDA context, which torch's own counters never show."""
    rows = _nvidia_smi("--query-compute-apps=pid,used_memory")
    if rows is None:
        return None
    return {int(pid): int(float(used)) << 20 for pid, used in rows if pid.isdigit()}


def gpu_memory_used() -> int | None:
    """Bytes in use on GPU 0, all processes together (nvidia-smi)."""
    rows = _nvidia_smi("--query-gpu=memory.used")
    return None if not rows else int(float(rows[0][0])) << 20


def rss() -> int:
    """This process's resident memory, in bytes."""
    import psutil

    return int(psutil.Process().memory_info().rss)


def peak_rss() -> int:
    """This process's resident high-water mark, in bytes."""
    # ru_maxrss is the process's high-water mark, in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def cuda_figures() -> dict[str, int]:
    """torch's and the driver's view of this process's GPU memory; empty without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return {}
    free, total = torch.cuda.mem_get_info()
    figures = {
        "cuda_allocated": int(torch.cuda.memory_allocated()),
        "cuda_reserved": int(torch.cuda.memory_reserved()),
        "cuda_peak_allocated": int(torch.cuda.max_memory_allocated()),
        "cuda_peak_reserved": int(torch.cuda.max_memory_reserved()),
        "cuda_used_on_device": int(total - free),  # all processes, contexts included
    }
    held = (gpu_memory_of_processes() or {}).get(os.getpid())
    if held is not None:
        figures["cuda_nvidia_smi_process"] = held  # this process, its context included
    return figures
