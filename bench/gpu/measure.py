"""The GPU check: every GPU figure the project claims, measured in one run of < 8 minutes.

    sh bench/gpu/run.sh OUT_DIR            # on the GPU machine (installs, then runs this)
    python bench/gpu/measure.py --smoke    # the same logic on the CPU, tiny replica (CI)

On the full-size release-shaped replica (random weights, real shapes, decoded tokens pinned),
each measurement in a fresh process:

* per precision (INT8 first load and from its cache, BF16, FP32) beside funasr's default
  path: load time, peak GPU memory (torch's peak, and what nvidia-smi shows for the process),
  key-up → text for 5 s and 10 s of speech, decode ms/token, torch reserved after unload and
  what the process still holds (bench/run.py's workers);
* the idle tiers, the out-of-memory fallbacks and the INT8 output head (bench/gpu/cases.py).

A case that fails or runs out of time is recorded as such; the others still run. Results go
to OUT_DIR/gpu.json and OUT_DIR/gpu.md as each case finishes.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

import run as suite  # noqa: E402  (bench/run.py)

MB = 2**20
COLUMNS = {
    "ours int8 first": ("ours", "int8"),
    "ours int8": ("ours", "int8"),
    "ours bf16": ("ours", "bf16"),
    "ours fp32": ("ours", "fp32"),
    "default fp32": ("default", "fp32"),
}
ORDER = (
    ("columns", "ours int8 first"),
    ("columns", "ours int8"),
    ("cases", "tiers"),
    ("columns", "ours bf16"),
    ("columns", "default fp32"),
    ("cases", "oom-load"),
    ("cases", "oom-decode"),
    ("cases", "oom-planned"),
    ("columns", "ours fp32"),
    ("cases", "layer"),
    ("cases", "decode-loop"),
)


class Run:
    """What the run has measured so far, written out after every case."""

    def __init__(self, out: Path, deadline: float, info: dict[str, Any]) -> None:
        self.out = out
        self.deadline = deadline
        self.summary: dict[str, Any] = {"machine": info, "columns": {}, "cases": {}, "steps": {}}

    def attempt(self, group: str, name: str, measure: Callable[[float], dict[str, Any]]) -> None:
        left = self.deadline - time.monotonic()
        if left < 20:
            self.summary[group][name] = {"skipped": "out of time"}
        else:
            started = time.monotonic()
            try:
                self.summary[group][name] = measure(left)
            except Exception as error:  # one failed case must not cost the others
                self.summary[group][name] = {"error": f"{error.__class__.__name__}: {error}"}
            print(f"{name}: {time.monotonic() - started:.0f} s", file=sys.stderr)
        self.write()

    def write(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "gpu.json").write_text(json.dumps(self.summary, indent=1))
        (self.out / "gpu.md").write_text(report(self.summary))


def worker(case: str, args: argparse.Namespace, timeout: float) -> dict[str, Any]:
    command = [
        sys.executable, str(HERE / "cases.py"), "--case", case, "--replica", args.replica,
        "--vad", args.vad, "--cache", args.cache, "--speech", args.speech,
        "--device", args.device, "--tokens", str(args.tokens), "--threads", str(args.threads),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def column(side: str, precision: str, args: argparse.Namespace, timeout: float) -> dict[str, Any]:
    args.timeout = int(timeout)
    return suite.derive(suite.run_side(side, precision, args))


def _mb(value: Any) -> str:
    return "–" if not isinstance(value, int | float) else f"{value / MB:.0f}"


def _s(value: Any) -> str:
    return "–" if not isinstance(value, int | float) else f"{value:.2f}"


def tiers_table(tiers: dict[str, Any]) -> list[str]:
    if "load_s" not in tiers:
        return [f"idle tiers: {tiers}"]
    rows = [
        ("ready (INT8 loaded)", tiers["ready"], "–", tiers["warm_text_s"]),
        ("weights parked in RAM", tiers["offloaded"], tiers["offload_s"],
         tiers["offloaded_text_s"]),
        ("weights freed, context kept", tiers["unloaded"], tiers["unload_s"],
         tiers["reload_s"] + tiers["reloaded_text_s"]),
    ]  # fmt: skip
    lines = [
        "| idle tier | torch reserved (MB) | nvidia-smi, process (MB) | time to enter (s) "
        "| key-up → text from it, 5 s speech (s) |",
        "|---|---|---|---|---|",
    ]
    for name, figures, enter, back in rows:
        lines.append(
            f"| {name} | {_mb(figures.get('torch_reserved'))} "
            f"| {_mb(figures.get('nvidia_smi_process'))} | {_s(enter)} | {_s(back)} |"
        )
    lines.append(
        f"| worker process ended | 0 | {_mb(tiers['worker_on_gpu_after_exit'])} "
        f"| {_s(tiers['worker_unload_s'])} "
        f"| {_s(tiers['worker_start_and_load_s'] + tiers['worker_first_text_s'])} |"
    )
    lines.append(
        f"\nworker loaded: {_mb(tiers['worker_on_gpu_loaded'])} MB on the GPU (nvidia-smi); "
        f"device in use before / after it ended: {_mb(tiers['device_used_before'])} / "
        f"{_mb(tiers['device_used_after_worker'])} MB"
    )
    return lines


def report(summary: dict[str, Any]) -> str:
    info = summary["machine"]
    lines = [
        f"machine: {info.get('gpu') or info.get('cpu')}, torch {info.get('torch')}, "
        f"device {summary.get('device')}, {summary.get('tokens')} decoded tokens, "
        f"replica {summary.get('replica')}",
        f"steps: {json.dumps(summary['steps'])}",
        "",
    ]
    columns = {k: v for k, v in summary["columns"].items() if "load_seconds" in v}
    if columns:
        # Ratios against funasr's default path, or the first column where it failed.
        reference = "default fp32" if "default fp32" in columns else next(iter(columns))
        lines += [suite.table(columns, reference), ""]
    for name, value in summary["columns"].items():
        if name not in columns:
            lines.append(f"{name}: {value}")
    cases = summary["cases"]
    if "tiers" in cases:
        lines += ["", *tiers_table(cases["tiers"]), ""]
    for name in ("oom-planned", "oom-load", "oom-decode"):
        if name in cases:
            lines.append(f"{name} (simulated): {json.dumps(cases[name])}")
    if "layer" in cases:
        lines.append(f"INT8 output head alone: {json.dumps(cases['layer'])}")
    if "decode-loop" in cases:
        lines.append(f"INT8 decode loop against generate(): {json.dumps(cases['decode-loop'])}")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=BENCH / "out" / "gpu")
    parser.add_argument("--carry", type=Path, default=HERE / "carry")
    parser.add_argument("--smoke", action="store_true", help="tiny replica (CPU, for CI)")
    parser.add_argument(
        "--budget", type=float, default=400.0, help="seconds for the cases, after the build"
    )
    parser.add_argument("--tokens", type=int, default=32, help="decoded tokens, pinned")
    parser.add_argument("--only", help="comma-separated columns and cases (default: all)")
    parser.add_argument("--threads", type=int, default=min(8, os.cpu_count() or 1))
    args = parser.parse_args()

    import torch

    args.device = "cuda" if torch.cuda.is_available() else "cpu"
    info = suite.machine()
    if args.device == "cuda":
        info["gpu_capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
        info["gpu_total_mb"] = torch.cuda.mem_get_info()[1] // MB
    run = Run(args.out, time.monotonic() + args.budget, info)
    run.summary.update(
        device=args.device, tokens=args.tokens, replica="tiny" if args.smoke else "full"
    )
    with tempfile.TemporaryDirectory(prefix="nanodictate-gpu-") as scratch:
        from nanodictate.testing.replica import build_replica
        from nanodictate.testing.vad_model import ensure_test_vad_model

        started = time.monotonic()
        args.replica = str(build_replica(Path(scratch) / "replica", full=not args.smoke))
        run.summary["steps"]["replica_build_s"] = round(time.monotonic() - started, 1)
        run.deadline = time.monotonic() + args.budget  # the cases' time, after the build
        carried_vad = args.carry / "fsmn-vad"
        args.vad = str(carried_vad if carried_vad.is_dir() else ensure_test_vad_model())
        args.speech = str(args.carry / "speech")
        args.cache = str(Path(scratch) / "int8-cache")
        if args.smoke:
            args.tokens = min(args.tokens, 4)
            run.summary["tokens"] = args.tokens
        # In order of what matters most, should time run out. "ours int8 first" builds the
        # INT8 cache that every later INT8 load (and the cases) reads.
        for group, name in ORDER:
            if args.only and name not in args.only.split(","):
                continue
            if group == "columns":
                side, precision = COLUMNS[name]
                run.attempt(group, name, functools.partial(column, side, precision, args))
            elif name.startswith("oom") and args.device != "cuda":
                run.summary["cases"][name] = {"skipped": "needs CUDA"}
            else:
                run.attempt(group, name, functools.partial(worker, name, args))
    print(report(run.summary))
    print(f"JSON: {args.out / 'gpu.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
