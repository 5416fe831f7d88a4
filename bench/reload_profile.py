"""Where an INT8 reload's time goes: Engine.unload() then Engine.load() from the INT8 cache.

    nice -n 10 python bench/reload_profile.py [--threads 2] [--top 25]

Full-size replica (`common.full_replica`), INT8 on the CPU, the cache bench/run.py uses. The
first load (which may build the cache) is not measured; after an unload the reload runs
under cProfile, and the stages the loader passes through are timed by wrapping them: the
cache opened, funasr building the model, the int8 layers made (and inside them the packing),
the float weights, the decode loop, the VAD. Prints the stages and cProfile's top functions
by their own time.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

from common import full_replica, rss  # noqa: E402


def _timed(owner: Any, name: str, spent: dict[str, list[float]], label: str) -> None:
    original: Callable[..., Any] = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[label].append(time.perf_counter() - started)

    setattr(owner, name, wrapper)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)

    from nanodictate.core.asr import (
        cache_identity,
        funasr_runtime,
        int8,
        model_build,
        model_load,
        weights,
    )
    from nanodictate.core.asr.engine import Engine

    funasr_runtime.import_funasr()
    cache = Path(tempfile.gettempdir()) / "nanodictate-bench-int8-cache"
    engine = Engine(full_replica(), cache_dir=cache, threads=args.threads)
    engine.load("int8", "cpu")
    engine.unload()
    print(f"after the first unload: rss {rss() / 1e6:.0f} MB")

    spent: dict[str, list[float]] = defaultdict(list)
    _timed(weights, "open_cache", spent, "open the cache (mmap)")
    _timed(weights, "load_int8_weights", spent, "int8 layers + float weights")
    _timed(weights, "load_float_weights", spent, "  float weights")
    _timed(cache_identity, "file_checksum", spent, "checksum (memo)")
    for name in dir(int8):
        if name.startswith("_prepack") or name.startswith("_pack"):
            _timed(int8, name, spent, f"  {name}")
    _timed(funasr_runtime, "build_automodel", spent, "funasr builds the model (all inside)")
    _timed(model_build, "greedy_decoder", spent, "decode loop set up")
    _timed(model_load.ModelLoader, "_load_detector", spent, "VAD model")
    _timed(model_load, "verify_model_folder", spent, "verify the folder")

    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.enable()
    engine.load("int8", "cpu")
    profile.disable()
    total = time.perf_counter() - started
    print(f"reload {total:.2f} s (under cProfile), rss loaded {rss() / 1e6:.0f} MB")
    for label, times in spent.items():
        print(f"  {label:<40} {sum(times):6.2f} s  ({len(times)} calls)")
    stats = pstats.Stats(profile)
    stats.sort_stats("tottime").print_stats(args.top)
    engine.unload()
    print(f"after the second unload: rss {rss() / 1e6:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
