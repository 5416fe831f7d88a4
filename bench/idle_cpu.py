"""CPU used at rest by the open microphone stream (the pre-roll), on a real audio server.

    python bench/idle_cpu.py                  # 20 s per measurement, both source kinds
    python bench/idle_cpu.py --seconds 5      # quicker, noisier
    python bench/idle_cpu.py --reference      # also bare PortAudio streams, for comparison
    python bench/idle_cpu.py --raw high:4410  # also a bare stream with these settings

It starts the project's private PulseAudio with a virtual microphone (tests/desktop/harness.py:
null sink + remap source, as the desktop tests use), then, in a fresh process per measurement,
opens `nanodictate.core.recorder.Recorder` with ``keep_open=True`` exactly as the tray app does,
waits 2 s, and reads the process's CPU time over ``--seconds`` of wall time. /proc splits the
time by thread: PortAudio's callback thread (ALSA read + our Python callback), the PulseAudio
client thread of ALSA's pulse plugin ("threaded-ml"), and the rest. Then it measures start() →
first audio callback ten times (the key-down → first frame part the recorder adds).

Two kinds of source:
- "quiet": nothing else uses the virtual microphone, so the server delivers audio at the rate
  our stream asks for, as a real microphone that only we record from does.
- "busy": the harness's keep-alive player (20 ms latency) drives the null sink in small
  blocks, like a source another low-latency application records from at the same time; the
  server then pushes audio to every client at that rate, whatever the client asked for.

Prints a table and writes JSON to bench/out/idle-cpu-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

# Runs in a fresh process on the private audio server: argv = kind, seconds.
_CHILD = r"""
import json, os, statistics, sys, threading, time
import numpy as np
import sounddevice as sd

kind, seconds = sys.argv[1], float(sys.argv[2])
TICK = os.sysconf("SC_CLK_TCK")
calls = {"n": 0, "frames": 0, "tid": None}

def thread_ticks():
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        out[int(tid)] = (name, int(fields[11]) + int(fields[12]))
    return out

def count(frames):
    calls["n"] += 1
    calls["frames"] += frames
    if calls["tid"] is None:
        calls["tid"] = threading.get_native_id()

recorder = None
if kind == "recorder":
    from nanodictate.core.recorder import Recorder

    recorder = Recorder(sd, keep_open=True)
    inner = recorder._callback

    def callback(indata, frames, time_info, status):
        count(frames)
        inner(indata, frames, time_info, status)

    recorder._callback = callback
    recorder.open()
    stream = recorder._stream
else:  # "raw:<latency>:<blocksize>": a bare PortAudio stream with an empty callback
    _, latency, blocksize = kind.split(":")
    info = sd.query_devices(None, "input")
    stream = sd.InputStream(
        samplerate=info["default_samplerate"], channels=2, dtype="float32",
        latency=latency if latency in ("low", "high") else float(latency),
        blocksize=int(blocksize), callback=lambda data, frames, t, s: count(frames),
    )
    stream.start()

time.sleep(2.0)
calls["n"] = calls["frames"] = 0
ticks0, cpu0, wall0 = thread_ticks(), time.process_time(), time.monotonic()
time.sleep(seconds)
ticks1, cpu1, wall1 = thread_ticks(), time.process_time(), time.monotonic()
wall = wall1 - wall0
by_thread = {"callback": 0.0, "pulse client": 0.0, "other": 0.0}
for tid, (name, ticks) in ticks1.items():
    spent = (ticks - ticks0.get(tid, (name, 0))[1]) / TICK
    key = "pulse client" if name == "threaded-ml" else "other"
    key = "callback" if tid == calls["tid"] else key
    by_thread[key] += spent
result = {
    "kind": kind,
    "rate": int(stream.samplerate),
    "blocksize": int(stream.blocksize),
    "stream_latency_s": float(stream.latency),
    "wall_s": wall,
    "cpu_percent": 100 * (cpu1 - cpu0) / wall,
    "cpu_percent_by_thread": {k: 100 * v / wall for k, v in by_thread.items()},
    "callbacks_per_s": calls["n"] / wall,
    "frames_per_callback": calls["frames"] / max(calls["n"], 1),
}
if recorder is not None:
    latencies = []
    for _ in range(10):
        time.sleep(0.137)  # a phase unrelated to the block period
        recorder.start()
        deadline = time.monotonic() + 2.0
        while recorder.first_frame_latency_s is None and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(0.05)
        latency = recorder.first_frame_latency_s
        recording = recorder.stop()
        latencies.append(latency if latency is not None else float("inf"))
        result["preroll_s"] = recording.preroll_seconds
    result["first_frame_ms"] = {
        "median": 1000 * statistics.median(latencies),
        "max": 1000 * max(latencies),
    }
    recorder.close()
else:
    stream.stop()
    stream.close()
print(json.dumps(result))
"""


def _measure(env: dict[str, str], kind: str, seconds: float) -> dict[str, Any]:
    child_env = {**env, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, kind, str(seconds)],
        env=child_env,
        cwd=REPO,  # `python -c` puts the working folder first on sys.path
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"measurement {kind} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _stop_keepalive(desk: Any) -> None:
    """End the harness's keep-alive player, so the server paces the source by our stream."""
    for entry in desk._processes:  # the harness names what it starts; this one is ours to end
        if entry.name == "pacat-keepalive" and entry.popen.poll() is None:
            entry.popen.terminate()
            entry.popen.wait(timeout=5)
    time.sleep(0.5)


def _machine() -> dict[str, Any]:
    import sounddevice

    pulse = subprocess.run(["pulseaudio", "--version"], capture_output=True, text=True)
    from common import machine_basics

    return {
        **machine_basics(),
        "sounddevice": sounddevice.__version__,
        "portaudio": sounddevice.get_portaudio_version()[1],
        "pulseaudio": pulse.stdout.strip(),
    }


def _row(source: str, result: dict[str, Any]) -> str:
    threads = result["cpu_percent_by_thread"]
    first = result.get("first_frame_ms")
    first_text = f"{first['median']:.0f} / {first['max']:.0f}" if first else "–"
    return (
        f"| {source} | {result['kind']} | {result['blocksize'] or 'var.'} "
        f"({result['frames_per_callback']:.0f}) | {result['callbacks_per_s']:.1f} | "
        f"**{result['cpu_percent']:.2f}** | {threads['callback']:.2f} | "
        f"{threads['pulse client']:.2f} | {threads['other']:.2f} | {first_text} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--source", choices=("quiet", "busy", "both"), default="both")
    parser.add_argument(
        "--reference", action="store_true", help="also bare PortAudio streams, empty callback"
    )
    parser.add_argument(
        "--raw",
        action="append",
        default=[],
        metavar="LATENCY:BLOCKSIZE",
        help="also a bare stream with these settings, e.g. high:0 or 0.1:2205 (repeatable)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO / "tests"))
    from desktop.harness import DesktopSession, missing_tools

    missing = missing_tools(tray=False, audio=True)
    if missing:
        print(f"needs these tools: {', '.join(missing)}", file=sys.stderr)
        return 2
    kinds = ["recorder"]
    if args.reference:
        kinds += ["raw:low:0", "raw:high:0", "raw:low:2048"]
    kinds += [f"raw:{settings}" for settings in args.raw]
    sources = ["busy", "quiet"] if args.source == "both" else [args.source]
    results: list[dict[str, Any]] = []
    with DesktopSession(tray=False, audio=True, watchdog_s=60 + 40 * args.seconds) as desk:
        for source in sources:  # "busy" first: the harness starts with the keep-alive
            if source == "quiet":
                _stop_keepalive(desk)
            for kind in kinds:
                result = _measure(desk.env, kind, args.seconds)
                result["source"] = source
                results.append(result)
                print(_row(source, result), file=sys.stderr, flush=True)

    machine = _machine()
    print(
        f"\nIdle CPU of an open microphone stream, {args.seconds:.0f} s each; "
        f"{machine['cpu']}, {machine['cores']} cores, {machine['pulseaudio']}, "
        f"{machine['portaudio']}\n"
    )
    print(
        "| source | stream | block (frames/callback) | callbacks/s | CPU % of one core | "
        "callback thread | pulse client thread | other | start→first frame ms (median / max) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for result in results:
        print(_row(result["source"], result))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"idle-cpu-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(
        json.dumps({"machine": machine, "seconds": args.seconds, "results": results}, indent=2)
    )
    print(f"\nJSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
