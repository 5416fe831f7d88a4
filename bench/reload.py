"""INT8 reload after an idle unload, with the layers packed in the background or during the load.

    nice -n 10 python bench/reload.py [--threads 2] [--cycles 3]

Full-size replica (`common.full_replica`), INT8 on the CPU from the cache bench/run.py uses,
the real FSMN-VAD model (as the tests get it). Each mode runs in a fresh process:

* ``background`` (the engine as it is): `int8_packing` packs after `Engine.load` returns;
* ``during-load`` (as before): the same layers packed before `Engine.load` returns.

Per mode, after a first load and unload (which imports funasr and warms the allocators):
``reload_s`` (`Engine.load`), ``packed_s`` (until every layer is packed), ``first_text_s``
(reload then transcribing 5 s of speech at once: what a user waits for after an idle unload
when the load starts at key-up, the worst case), ``ms_token`` (decode, tokens pinned to 8 and
40, median of 5), and RSS above the first unload after each later unload. Prints a table,
writes ``bench/results/reload-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

from common import full_replica, machine_basics, rss  # noqa: E402

MODES = ("background", "during-load")


def measure(mode: str, threads: int, cycles: int) -> dict[str, Any]:
    from nanodictate.core.asr import int8_packing, weights
    from nanodictate.core.asr.engine import Engine
    from nanodictate.core.asr.funasr_runtime import import_funasr
    from nanodictate.testing.speech import speech_with_silence

    if mode == "during-load":

        def pack_here(layers: Any) -> None:
            for layer in layers:
                layer.pack()

        setattr(weights, "pack_in_background", pack_here)  # noqa: B010 (replacing a function)
    import_funasr()
    audio = speech_with_silence(
        "This is a dictation after the model was unloaded for being idle.", before=0.5
    ).samples
    from nanodictate.testing.vad_model import ensure_test_vad_model

    engine = Engine(
        full_replica(),
        vad_dir=ensure_test_vad_model(),
        cache_dir=Path(tempfile.gettempdir()) / "nanodictate-bench-int8-cache",
        threads=threads,
    )
    engine.load("int8", "cpu")
    engine.transcribe(audio, 16000, language="en")
    engine.unload()
    baseline = rss()
    out: dict[str, Any] = {"mode": mode, "threads": threads, "speech_s": len(audio) / 16000}
    reloads, packed, first_text, above = [], [], [], []
    for _ in range(cycles):
        started = time.perf_counter()
        engine.load("int8", "cpu")
        reloads.append(time.perf_counter() - started)
        engine.transcribe(audio, 16000, language="en")
        first_text.append(time.perf_counter() - started)
        loaded = engine._loaded
        assert loaded is not None
        int8_packing.pack_now(loaded.automodel.model)
        packed.append(time.perf_counter() - started)
        del loaded
        engine.unload()
        above.append(rss() - baseline)
    engine.load("int8", "cpu")
    loaded = engine._loaded
    assert loaded is not None
    int8_packing.pack_now(loaded.automodel.model)
    del loaded
    out["model_bytes"] = engine.memory_report().model_cpu_bytes
    per_token = []
    for _ in range(6):
        times = {}
        for tokens in (8, 40):
            engine.decode_tokens = tokens
            times[tokens] = engine.transcribe(audio, 16000, language="en").timings["decode"]
        per_token.append(1000 * (times[40] - times[8]) / 32)
    engine.unload()
    out.update(
        reload_s=reloads,
        first_text_s=first_text,
        packed_s=packed,
        rss_above_first_unload=above,
        ms_token=statistics.median(per_token[1:]),
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--modes", nargs="+", default=list(MODES))
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child process's mode
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one, args.threads, args.cycles)))
        return 0
    full_replica()
    rows = []
    for mode in args.modes:
        command = [sys.executable, __file__, "--one", mode, "--threads", str(args.threads)]
        command += ["--cycles", str(args.cycles)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"{'mode':<12}{'reload s':>10}{'+5 s text s':>13}{'packed s':>10}{'ms/token':>10}")
    for row in rows:
        print(
            f"{row['mode']:<12}{statistics.median(row['reload_s']):>10.2f}"
            f"{statistics.median(row['first_text_s']):>13.2f}"
            f"{statistics.median(row['packed_s']):>10.2f}{row['ms_token']:>10.1f}"
            f"   RSS after unloads: "
            + ", ".join(f"{b / 1e6:+.0f} MB" for b in row["rss_above_first_unload"])
            + f"; model {row['model_bytes'] / 1e9:.2f} GB"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"reload-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"machine": machine_basics(), "rows": rows}, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
