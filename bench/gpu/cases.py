"""The GPU check's measurements that bench/run.py does not make, one per fresh process.

    python bench/gpu/cases.py --case tiers --replica DIR --vad DIR --cache DIR --speech DIR

Each case prints one JSON line. The cases:

* ``tiers``: what each idle tier leaves on the GPU and the time back to a ready model —
  worker process ended (nothing of ours on the GPU), weights freed with the CUDA context kept,
  weights parked in RAM — for the app's default INT8;
* ``oom-planned``: another program holds all but ≈1.7 GB: BF16 is asked for, the placement
  plan must choose INT8 on the GPU up front;
* ``oom-load``: the process is capped (torch's per-process fraction) below what BF16 needs
  although the driver reports plenty free: BF16 runs out of memory while loading;
* ``oom-decode``: INT8 loads, then the cap drops to what is allocated: the next dictation
  runs out of memory while decoding;
* ``layer``: the CUDA INT8 output head (151,936 × 1024) alone — its transient and ms/call;
* ``decode-loop``: INT8 ms/token of our decode loop (CUDA graph) and funasr's generate(),
  and whether their texts are the same.

The OOM cases say "simulated" in the table: the limits are imposed in the process.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

from common import gpu_memory_of_processes, gpu_memory_used  # noqa: E402

MB = 2**20


def on_gpu(pid: int) -> int | None:
    """Bytes the driver says ``pid`` holds on the GPU (0 when it is not listed)."""
    held = gpu_memory_of_processes()
    return None if held is None else held.get(pid, 0)


def torch_figures() -> dict[str, int]:
    import torch

    if not torch.cuda.is_available() or not torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        return {}
    return {
        "torch_allocated": int(torch.cuda.memory_allocated()),
        "torch_reserved": int(torch.cuda.memory_reserved()),
        "nvidia_smi_process": on_gpu(os.getpid()) or 0,
    }


def seconds_of(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def engine_config(args: argparse.Namespace) -> Any:
    from nanodictate.core.asr.engine_process import EngineConfig

    return EngineConfig(
        model_dir=Path(args.replica),
        vad_dir=Path(args.vad),
        cache_dir=Path(args.cache),
        threads=args.threads,
        decode_tokens=args.tokens,
    )


def speech(args: argparse.Namespace, seconds: int) -> Any:
    from nanodictate.core.audio_input import prepare_audio

    return prepare_audio(Path(args.speech) / f"speech-{seconds}s.wav")


def tiers(args: argparse.Namespace) -> dict[str, Any]:
    """Deepest tier first, while this process has not touched CUDA: then the driver's
    figures belong to the worker alone."""
    from nanodictate.core.asr.engine_process import EngineProcess

    audio = speech(args, 5)
    out: dict[str, Any] = {"device_used_before": gpu_memory_used()}
    worker = EngineProcess(engine_config(args))
    out["worker_start_and_load_s"] = seconds_of(lambda: worker.load("int8", args.device))
    out["worker_first_text_s"] = seconds_of(lambda: worker.transcribe(audio, 16000))
    pid = worker.pid
    out["worker_on_gpu_loaded"] = None if pid is None else on_gpu(pid)
    out["worker_unload_s"] = seconds_of(worker.unload)
    out["worker_on_gpu_after_exit"] = None if pid is None else on_gpu(pid)
    out["device_used_after_worker"] = gpu_memory_used()

    engine = _engine(args)
    out["load_s"] = seconds_of(lambda: engine.load("int8", args.device))
    out["first_text_s"] = seconds_of(lambda: engine.transcribe(audio, 16000))
    out["warm_text_s"] = seconds_of(lambda: engine.transcribe(audio, 16000))
    out["ready"] = torch_figures()
    out["offload_s"] = seconds_of(engine.offload)
    out["offloaded"] = torch_figures()
    out["offloaded_text_s"] = seconds_of(lambda: engine.transcribe(audio, 16000))
    out["unload_s"] = seconds_of(engine.unload)
    out["unloaded"] = torch_figures()
    out["reload_s"] = seconds_of(lambda: engine.load("int8", args.device))
    out["reloaded_text_s"] = seconds_of(lambda: engine.transcribe(audio, 16000))
    engine.unload()
    return out


def _engine(args: argparse.Namespace) -> Any:
    from nanodictate.core.asr.engine import Engine

    return Engine(
        Path(args.replica),
        vad_dir=Path(args.vad),
        cache_dir=Path(args.cache),
        threads=args.threads,
        decode_tokens=args.tokens,
    )


def _outcome(engine: Any, report: Any, seconds: float, audio: Any) -> dict[str, Any]:
    started = time.perf_counter()
    text = engine.transcribe(audio, 16000).text
    placement = engine.placement
    return {
        "asked": "bf16",
        "loaded": f"{report.precision.value}/{report.device}",
        "load_s": seconds,
        "reason": report.fallback_reason,
        "text_s": time.perf_counter() - started,
        "text_came_back": bool(text),
        "finally": None if placement is None else f"{placement.precision}/{placement.device}",
    }


def oom_planned(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    free, _ = torch.cuda.mem_get_info()
    keep_free = int(1.7 * 2**30)
    other_program = torch.empty(max(0, free - keep_free), dtype=torch.uint8, device="cuda")
    engine = _engine(args)
    started = time.perf_counter()
    report = engine.load("bf16", "auto")
    result = _outcome(engine, report, time.perf_counter() - started, speech(args, 5))
    result["free_left_mb"] = keep_free // MB
    del other_program
    return result


def oom_load(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    _, total = torch.cuda.mem_get_info()
    cap = int(1.3 * 2**30)
    torch.cuda.set_per_process_memory_fraction(cap / total)
    engine = _engine(args)
    started = time.perf_counter()
    report = engine.load("bf16", "auto")
    result = _outcome(engine, report, time.perf_counter() - started, speech(args, 5))
    result["cap_mb"] = cap // MB
    return result


def oom_decode(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    engine = _engine(args)
    started = time.perf_counter()
    report = engine.load("int8", "cuda")
    seconds = time.perf_counter() - started
    _, total = torch.cuda.mem_get_info()
    cap = torch.cuda.memory_allocated() + 8 * MB
    torch.cuda.empty_cache()
    torch.cuda.set_per_process_memory_fraction(cap / total)
    result = _outcome(engine, report, seconds, speech(args, 10))
    result["asked"] = "int8"
    result["cap_mb"] = cap // MB
    return result


def layer(args: argparse.Namespace) -> dict[str, Any]:
    """The INT8 output head on its own: the largest matrix, run once per decoded token."""
    import torch

    from nanodictate.core.asr.int8 import WeightOnlyInt8Linear, quantize_rows

    device = torch.device(args.device)
    rows = 151_936 if device.type == "cuda" else 8_192
    weight, scale = quantize_rows(torch.randn(rows, 1024))
    head = WeightOnlyInt8Linear(weight.to(device), scale.to(device), None)
    out: dict[str, Any] = {"rows": rows}
    for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        x = torch.randn(1, 1, 1024, device=device, dtype=dtype)
        for _ in range(3):
            head(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
        calls = 50
        started = time.perf_counter()
        for _ in range(calls):
            head(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
            out[f"{name}_transient_mb"] = (torch.cuda.max_memory_allocated() - before) / MB
        out[f"{name}_ms_per_call"] = 1000 * (time.perf_counter() - started) / calls
    return out


def decode_loop(args: argparse.Namespace) -> dict[str, Any]:
    """INT8: our decode loop (a CUDA graph per token on a GPU) against funasr's generate():
    the same text (the engine's features do not dither), and ms/token of each (decode time at
    ``tokens`` minus at 8 tokens, over the difference; median of 5)."""
    import statistics

    from nanodictate.core.asr.engine import Engine

    audio = speech(args, 5)
    out: dict[str, Any] = {}
    texts: dict[str, str] = {}
    for name, loop in (("generate", False), ("loop", True)):
        engine = Engine(
            Path(args.replica), cache_dir=Path(args.cache), threads=args.threads, decoder_loop=loop
        )
        engine.load("int8", args.device)
        texts[name] = engine.transcribe(audio, 16000).text
        per_token = []
        for _ in range(6):  # the first round warms up (and captures the graph)
            times = []
            for tokens in (8, args.tokens):
                engine.decode_tokens = tokens
                times.append(engine.transcribe(audio, 16000).timings["decode"])
            per_token.append(1000 * (times[1] - times[0]) / (args.tokens - 8))
        out[f"{name}_ms_per_token"] = statistics.median(per_token[1:])
        engine.unload()
    out["same_text"] = texts["loop"] == texts["generate"]
    return out


CASES: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "decode-loop": decode_loop,
    "tiers": tiers,
    "oom-planned": oom_planned,
    "oom-load": oom_load,
    "oom-decode": oom_decode,
    "layer": layer,
}
GPU_ONLY = frozenset({"oom-planned", "oom-load", "oom-decode"})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=sorted(CASES), required=True)
    parser.add_argument("--replica", required=True)
    parser.add_argument("--vad", required=True)
    parser.add_argument("--cache", required=True)
    parser.add_argument("--speech", required=True)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda")
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=min(8, os.cpu_count() or 1))
    args = parser.parse_args()
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        result = CASES[args.case](args)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
