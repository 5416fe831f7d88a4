"""Key-up → text for 5 s, 30 s and 60 s dictations, with chunks transcribed while the user
speaks (`core.live_segments`) and without (everything at key-up).

The engine runs in this process (`Engine`, the tiny replica or, with --full, the full-size
one, INT8 on the CPU, and the real FSMN-VAD). A dictation is espeak-ng sentences with
pauses of 1.2–2.5 s. "live" feeds the recording to the engine in 0.5 s steps as the app's
worker does, then times only what is left at key-up (`transcribe_rest`); the passes before
key-up are assumed to keep pace with the speech, and their total time is reported beside
(a pass that cannot keep pace only leaves more for key-up). "off" times transcribing the
whole recording at key-up. Goal (issue 10): live 60 s ≤ 1.3 × live 5 s.

    python bench/live_latency.py [--full] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import full_replica, machine_basics

from nanodictate.core.asr.engine import Engine
from nanodictate.core.live_segments import LiveJobs, LivePass, transcribe_rest
from nanodictate.testing.speech import make_long_recording, speech

RATE = 16000
STEP_SECONDS = 0.5
SENTENCES = [
    "please send the report to the whole team before friday",
    "the meeting moves to room four",
    "remember to attach the figures from last quarter",
    "thanks for the quick answer yesterday",
    "we will review the draft together next week",
    "let me know if anything is missing",
]
PAUSES = [1.5, 1.2, 2.0, 1.6, 2.5, 1.3]


def dictation(seconds: float) -> np.ndarray[Any, Any]:
    """Sentences and pauses until `seconds` of audio, ending in speech plus 0.3 s."""
    parts: list[np.ndarray[Any, Any]] = []
    pauses: list[float] = []
    total = 0.0
    index = 0
    while True:
        part = speech(SENTENCES[index % len(SENTENCES)])
        if parts and total + len(part) / RATE > seconds:
            break
        if parts:
            pauses.append(PAUSES[index % len(PAUSES)])
            total += pauses[-1]
        parts.append(part)
        total += len(part) / RATE
        index += 1
        if total >= seconds:
            break
    return make_long_recording(parts, pauses, lead=0.3, tail=0.3, background=0.002).samples


def live_run(engine: Engine, samples: np.ndarray[Any, Any]) -> tuple[float, float, str]:
    jobs = LiveJobs()
    known = 0
    passes_seconds = 0.0
    for now in range(round(STEP_SECONDS * RATE), len(samples), round(STEP_SECONDS * RATE)):
        jobs.offer(LivePass(1, samples[known:now], known, "en"))
        request = jobs.take()
        assert request is not None
        started = time.perf_counter()
        update = jobs.run_pass(engine, request)
        passes_seconds += time.perf_counter() - started
        if update is not None and update.new_segments:
            known = round(update.new_segments[-1].end * RATE)
    started = time.perf_counter()
    result = transcribe_rest(engine, jobs.take_dictation(1), samples, RATE, language="en")
    return time.perf_counter() - started, passes_seconds, result.text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the full-size replica")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lengths", default="5,30,60")
    parser.add_argument("--out", type=Path, default=Path("bench/results/live-latency.json"))
    args = parser.parse_args()

    from nanodictate.testing.replica import build_replica
    from nanodictate.testing.vad_model import ensure_test_vad_model

    with tempfile.TemporaryDirectory(prefix="nanodictate-live-bench-") as tmp:
        model_dir = full_replica() if args.full else build_replica(Path(tmp) / "replica")
        engine = Engine(
            model_dir, vad_dir=ensure_test_vad_model(), cache_dir=Path(tmp) / "cache", threads=2
        )
        engine.load("int8", "cpu")
        rows = []
        for seconds in (float(x) for x in args.lengths.split(",")):
            samples = dictation(seconds)
            off = []
            live = []
            passes = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                whole = engine.transcribe(samples, RATE, language="en")
                off.append(time.perf_counter() - started)
                at_key_up, during, text = live_run(engine, samples)
                assert text == whole.text, "live text differs from the whole recording's"
                live.append(at_key_up)
                passes.append(during)
            rows.append(
                {
                    "audio_seconds": round(len(samples) / RATE, 1),
                    "off_ms": round(statistics.median(off) * 1000, 1),
                    "live_ms": round(statistics.median(live) * 1000, 1),
                    "passes_while_speaking_ms": round(statistics.median(passes) * 1000, 1),
                }
            )
        engine.unload()
    print(f"{'audio s':>8} {'off ms':>9} {'live ms':>9} {'passes ms':>10}")
    for row in rows:
        print(
            f"{row['audio_seconds']:>8} {row['off_ms']:>9} {row['live_ms']:>9} "
            f"{row['passes_while_speaking_ms']:>10}"
        )
    ratio = rows[-1]["live_ms"] / rows[0]["live_ms"] if rows[0]["live_ms"] else None
    longest, shortest = rows[-1]["audio_seconds"], rows[0]["audio_seconds"]
    print(f"live {longest} s / {shortest} s: {ratio:.2f} (goal ≤ 1.3)")
    report = {
        "machine": machine_basics(),
        "model": "full-size replica" if args.full else "tiny replica",
        "precision": "int8",
        "rows": rows,
        "ratio_longest_to_shortest_live": ratio,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
