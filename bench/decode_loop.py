"""ms per decoded token: funasr's generate(), the engine before the loop, the engine's loop.

    python bench/decode_loop.py [--precisions int8 fp32] [--threads 2] [--rounds 5]

On the full-size replica (random weights, `common.full_replica`), each precision in a fresh
process that loads the model twice — once decoding with funasr's ``generate()``
(``Engine(decoder_loop=False)``), once with our loop — and measures the three paths in
turns, so a neighbour's load on the CPU hits them alike:

* ``funasr``: ``AutoModel.generate`` called directly (no VAD, no chunking);
* ``engine-generate``: ``Engine.transcribe`` as it was before the loop;
* ``engine-loop``: ``Engine.transcribe`` with `decoder_loop.GreedyDecoder`;
* ``matmuls-alone``: only the loop's matrix products for one token (each layer's fused
  q/k/v, output, fused gate/up and down projections, then the output head), in model order
  on one row, with nothing around them: what the kernels cost, so that ``engine-loop``
  minus this is what the rest of a step costs (norms, rotary, attention, cache, Python).

Each round transcribes the same speech with the token count pinned to ``short`` and ``long``;
ms/token is the difference of the two decode times over the difference of the counts, which
leaves out the encoder, the prompt and the prefill. The median of the rounds is reported, and
the loop's tokens are checked against ``generate()``'s (same text). Also: seconds to load
INT8 from its cache, and the model's bytes. Prints a table, writes
``bench/results/decode-loop-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

from common import full_replica, machine_basics  # noqa: E402

PATHS = ("funasr", "engine-generate", "engine-loop", "matmuls-alone")


def _speech() -> Any:
    from nanodictate.testing.speech import speech

    return speech("This is a dictation to measure how fast the decoder makes its tokens.")


def measure(precision: str, threads: int, rounds: int, short: int, long: int) -> dict[str, Any]:
    """In this process: both engines, the three paths in turns."""
    import tempfile

    import numpy as np
    import torch

    from nanodictate.core.asr.engine import Engine
    from nanodictate.core.asr.funasr_runtime import quiet
    from nanodictate.core.asr.loop_inference import ChunkRequest, generate_options

    replica = full_replica()
    cache = Path(tempfile.gettempdir()) / "nanodictate-bench-int8-cache"
    audio = _speech()
    engines: dict[str, Engine] = {}
    out: dict[str, Any] = {"precision": precision, "threads": threads}
    for loop in (False, True):
        engine = Engine(replica, cache_dir=cache, threads=threads, decoder_loop=loop)
        started = time.perf_counter()
        report = engine.load(precision, "cpu")
        key = "loop" if loop else "generate"
        out[f"load_s_{key}"] = time.perf_counter() - started
        out[f"load_from_cache_{key}"] = report.from_cache
        out[f"model_bytes_{key}"] = engine.memory_report().model_cpu_bytes
        engines[key] = engine

    def funasr_decode(tokens: int) -> float:
        loaded = engines["generate"]._loaded
        assert loaded is not None
        request = ChunkRequest("英文", [], True, loaded.llm_dtype, tokens, tokens)
        tensor = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
        started = time.perf_counter()
        with torch.inference_mode(), quiet():
            loaded.automodel.generate(input=tensor, **generate_options(request))
        return time.perf_counter() - started

    def engine_decode(key: str, tokens: int) -> float:
        engine = engines[key]
        engine.decode_tokens = tokens
        return engine.transcribe(audio, 16000, language="en").timings["decode"]

    def matmuls_alone(tokens: int) -> float:
        loaded = engines["loop"]._loaded
        assert loaded is not None and loaded.decoder is not None
        decoder = loaded.decoder
        steps = [
            matrix
            for layer in decoder.layers
            for matrix in (layer.qkv, layer.o, layer.gate_up, layer.down)
        ] + [decoder.head]
        # one row of the width each matrix reads
        rows = [torch.randn(1, 1, _width(matrix)) for matrix in steps]
        with torch.inference_mode():
            started = time.perf_counter()
            for _ in range(tokens):
                for matrix, row in zip(steps, rows, strict=True):
                    matrix(row)
        return time.perf_counter() - started

    runs: dict[str, Callable[[int], float]] = {
        "funasr": funasr_decode,
        "engine-generate": lambda n: engine_decode("generate", n),
        "engine-loop": lambda n: engine_decode("loop", n),
        "matmuls-alone": matmuls_alone,
    }
    for run in runs.values():  # warm-up: first calls allocate and pick kernels
        run(short)
    per_token: dict[str, list[float]] = {path: [] for path in PATHS}
    for _ in range(rounds):
        for path, run in runs.items():
            first, second = run(short), run(long)
            per_token[path].append(1000 * (second - first) / (long - short))
    out["ms_per_token"] = {path: statistics.median(v) for path, v in per_token.items()}
    out["ms_per_token_runs"] = per_token
    for engine in engines.values():
        engine.decode_tokens = None
    texts = {key: e.transcribe(audio, 16000, language="en").text for key, e in engines.items()}
    out["same_text"] = texts["loop"] == texts["generate"]
    for engine in engines.values():
        engine.unload()
    return out


def _width(matrix: Any) -> int:
    """The input width of one of the loop's matrices (an INT8 module, or a float one)."""
    return int(getattr(matrix, "in_features", None) or matrix.weight.shape[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precisions", nargs="+", default=["int8", "fp32"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--short", type=int, default=8)
    parser.add_argument("--long", type=int, default=40)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child process's precision
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one, args.threads, args.rounds, args.short, args.long)))
        return 0
    full_replica()  # built once, before the timed children
    results = []
    for precision in args.precisions:
        command = [sys.executable, __file__, "--one", precision, "--threads", str(args.threads)]
        command += ["--rounds", str(args.rounds), "--short", str(args.short)]
        command += ["--long", str(args.long)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"{'precision':<10}" + "".join(f"{p:>17}" for p in PATHS) + f"{'loop/generate':>15}")
    for row in results:
        figures = row["ms_per_token"]
        ratio = figures["engine-loop"] / figures["engine-generate"]
        cells = "".join(f"{figures[p]:>14.1f} ms" for p in PATHS)
        print(f"{row['precision']:<10}{cells}{ratio:>15.2f}   same text: {row['same_text']}")
        print(
            f"{'':<10}load {row['load_s_loop']:.1f} s, model {row['model_bytes_loop'] / 1e9:.2f} GB"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = args.out / f"decode-loop-{stamp}.json"
    path.write_text(json.dumps({"machine": machine_basics(), "results": results}, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
