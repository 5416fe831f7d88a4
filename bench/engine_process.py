"""What running the engine in its own process costs: cold load, a call, a 10-minute recording.

    python bench/engine_process.py            # full-size replica (built once, cached)
    python bench/engine_process.py --smoke    # the tiny replica, in seconds (CI)

Each measurement starts a fresh parent process, as the tray app does after an idle unload:
"in process" builds `Engine` there (torch and funasr imported into the app), "own process"
builds `EngineProcess` (a child imports them; the parent never does). The INT8 cache is made
once before, so every load reads it. Printed as a table; JSON to bench/out/.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEN_MINUTES = 600 * 16000

_MEASURE = """
import json, sys, time
start = time.perf_counter()
from pathlib import Path
import numpy as np
mode, replica, vad, cache = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
if mode == "own process":
    from nanodictate.core.asr.engine_process import EngineConfig, EngineProcess
    engine = EngineProcess(EngineConfig(replica, vad_dir=vad, cache_dir=cache))
else:
    from nanodictate.core.asr.engine import Engine
    engine = Engine(replica, vad_dir=vad, cache_dir=cache)
engine.load("int8", "cpu")
loaded = time.perf_counter()
short = np.zeros(16000, np.float32)
engine.transcribe(short, 16000)
t = time.perf_counter(); engine.transcribe(short, 16000); call = time.perf_counter() - t
long = np.random.default_rng(0).standard_normal({samples}).astype(np.float32) * 1e-3
t = time.perf_counter(); engine.transcribe(long, 16000); ten = time.perf_counter() - t
engine.unload()
print(json.dumps({{"load_s": loaded - start, "call_1s_s": call, "ten_minutes_s": ten}}))
"""

_ECHO = """
import pickle, sys
data = pickle.load(sys.stdin.buffer)
sys.stdout.buffer.write(pickle.dumps(len(data))); sys.stdout.buffer.flush()
"""


def _run(mode: str, args: argparse.Namespace, samples: int) -> dict[str, float]:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _MEASURE.format(samples=samples),
            mode,
            args.replica,
            args.vad,
            args.cache,
        ],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=REPO,
    )
    if done.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def pipe_transfer_seconds(samples: int, runs: int) -> float:
    """A recording pickled through a child's stdin, as EngineProcess sends it (median)."""
    import pickle

    import numpy as np

    audio = np.zeros(samples, np.float32)
    times = []
    for _ in range(runs):
        child = subprocess.Popen(
            [sys.executable, "-c", _ECHO], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert child.stdin is not None and child.stdout is not None
        time.sleep(0.3)  # the interpreter is up
        start = time.perf_counter()
        pickle.dump(audio, child.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        child.stdin.flush()
        assert pickle.load(child.stdout) == samples
        times.append(time.perf_counter() - start)
        child.communicate()
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny replica, 1 run, 10 s audio")
    parser.add_argument("--replica", help="replica folder (default: the full-size one)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "engine-process.json")
    args = parser.parse_args()
    from nanodictate.testing.replica import build_replica
    from nanodictate.testing.vad_model import ensure_test_vad_model

    args.vad = str(ensure_test_vad_model())
    samples = 10 * 16000 if args.smoke else TEN_MINUTES
    runs = 1 if args.smoke else args.runs
    with tempfile.TemporaryDirectory(prefix="nanodictate-bench-") as scratch:
        if args.smoke:
            args.replica = str(build_replica(Path(scratch) / "replica"))
        elif args.replica is None:
            from common import full_replica

            args.replica = str(full_replica())
        args.cache = str(Path(scratch) / "int8-cache")
        _run("in process", args, 16000)  # makes the INT8 cache; not counted
        results: dict[str, list[dict[str, float]]] = {"in process": [], "own process": []}
        for _ in range(runs):  # interleaved, so a noisy moment hits both sides
            for mode in results:
                results[mode].append(_run(mode, args, samples))
        transfer = pipe_transfer_seconds(samples, max(runs, 3))
    medians = {
        mode: {key: statistics.median(r[key] for r in rows) for key in rows[0]}
        for mode, rows in results.items()
    }
    minutes = samples / 16000 / 60
    print(f"| (median of {runs}) | in process | own process | own ÷ in |")
    print("|---|---|---|---|")
    for key, label in (
        ("load_s", "cold load, INT8 from cache (s)"),
        ("call_1s_s", "transcribe 1 s of silence (s)"),
        ("ten_minutes_s", f"transcribe {minutes:g} min of noise (s)"),
    ):
        inside, own = medians["in process"][key], medians["own process"][key]
        print(f"| {label} | {inside:.3f} | {own:.3f} | {own / inside:.2f} |")
    print(
        f"| pipe transfer of {minutes:g} min of audio ({samples * 4 / 2**20:.1f} MB) (s) | – | "
        f"{transfer:.3f} | – |"
    )
    summary = {
        "smoke": args.smoke,
        "replica": args.replica,
        "runs": runs,
        "audio_minutes": minutes,
        "medians": medians,
        "runs_raw": results,
        "pipe_transfer_s": transfer,
        "cores": os.cpu_count(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=1))
    print(f"JSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
