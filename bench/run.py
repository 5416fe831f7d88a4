"""Memory and speed of nanodictate's engine beside funasr's default path, side by side.

    python bench/run.py                 # full-size replica (built once, cached), CPU or GPU
    python bench/run.py --smoke         # the same code on the tiny replica, in seconds (CI)

Weights' values change neither time nor memory; shapes and token counts do. So the run uses
a same-layout random-weight replica with the real dimensions (829.8 M parameters) and pins
the number of decoded tokens, so both sides do the same work. Every measurement runs in a
fresh process, so peak and resident memory belong to that measurement alone.

"default" is the obvious way of running the model, as published tuning guides do:
``funasr.AutoModel(model=dir)`` then ``generate()``, full precision, ``del`` to unload.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import llamacpp
from common import cuda_figures, peak_rss, rss
from timing import TokenClock, timed_calls, token_clocks, utterance

REPO = Path(__file__).resolve().parents[1]
MB = 2**20


# ------------------------------------------------------------------------ one side, one process


def measure_ours(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from nanodictate.core.asr.engine import Engine
    from nanodictate.core.asr.funasr_runtime import import_funasr

    torch.set_num_threads(args.threads)
    import_funasr()
    audio = {s: utterance(s, args.speech) for s in (5.0, 10.0)}
    gc.collect()
    baseline = rss()
    result: dict[str, Any] = {"baseline_rss": baseline}

    def engine(tokens: int) -> Engine:
        return Engine(
            Path(args.replica),
            vad_dir=Path(args.vad),
            cache_dir=Path(args.cache),
            threads=args.threads,
            decode_tokens=tokens,
        )

    first = engine(args.tokens)
    started = time.perf_counter()
    report = first.load(args.precision, args.device)
    result["load_seconds"] = time.perf_counter() - started
    result["load_from_cache"] = report.from_cache
    result["placement"] = f"{report.precision.value}/{report.device}"
    # INT8 on the CPU: the layers are packed after the load (`int8_packing`); the memory of
    # the loaded model is measured once they all are.
    from nanodictate.core.asr.int8_packing import pack_now

    assert first._loaded is not None
    pack_now(first._loaded.automodel.model)
    result["load_and_pack_seconds"] = time.perf_counter() - started
    result["load_peak_rss"] = peak_rss()
    result["loaded_rss"] = rss()
    result.update({f"loaded_{k}": v for k, v in cuda_figures().items()})
    loaded = first._loaded
    assert loaded is not None
    generator = loaded.automodel.model.llm if loaded.decoder is None else loaded.decoder
    result.update(infer(first, audio, args, loaded.automodel.model, generator))
    del loaded, generator  # the unload below must free the model
    result["after_inference_rss"] = rss()
    first.unload()
    result["unloaded_rss"] = rss()
    result.update({f"unloaded_{k}": v for k, v in cuda_figures().items()})
    started = time.perf_counter()
    again = first.load(args.precision, args.device)
    result["reload_seconds"] = time.perf_counter() - started
    result["reload_from_cache"] = again.from_cache
    # Three load → transcribe → unload cycles (the first one above): memory must come back.
    # The first right after the reload: INT8 layers still packing in the background
    # (`int8_packing`) are packed by the transcription, so this is the worst case.
    cycles = [result["unloaded_rss"]]
    for cycle in range(2):
        first.transcribe(audio[5.0], 16000, language="en")
        if cycle == 0:
            result["reload_then_5s_seconds"] = time.perf_counter() - started
        first.unload()
        cycles.append(rss())
        first.load(args.precision, args.device)
    first.unload()
    result["unload_cycles_worst_above_baseline"] = max(cycles) - baseline
    return result


def measure_default(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import funasr

    torch.set_num_threads(args.threads)
    audio = {s: utterance(s, args.speech) for s in (5.0, 10.0)}
    gc.collect()
    baseline = rss()
    result: dict[str, Any] = {"baseline_rss": baseline, "placement": f"fp32/{args.device}"}
    device = "cuda:0" if args.device == "cuda" else "cpu"
    vocabulary = str(Path(args.replica) / "multilingual.tiktoken")

    def build() -> Any:
        return funasr.AutoModel(
            model=args.replica,
            vad_model=args.vad,
            device=device,
            ncpu=args.threads,
            disable_update=True,
            disable_pbar=True,
            log_level="ERROR",
            # The release's config declares a CTC branch whose tokenizer looks for its
            # vocabulary inside funasr's package (absent) unless told where it is.
            dataset_conf={"ctc_tokenizer_conf": {"vocab_path": vocabulary}},
        )

    started = time.perf_counter()
    model = build()
    result["load_seconds"] = time.perf_counter() - started
    result["load_peak_rss"] = peak_rss()
    result["loaded_rss"] = rss()
    result.update({f"loaded_{k}": v for k, v in cuda_figures().items()})

    class Facade:
        """The default path's generate() behind the engine's transcribe() shape."""

        def transcribe(self, samples: Any, rate: int, **_: Any) -> Any:
            tensor = torch.from_numpy(samples)
            with torch.no_grad():
                return model.generate(
                    input=tensor,
                    language="英文",
                    max_length=args.tokens,
                    llm_kwargs={"min_new_tokens": args.tokens},
                )

    result.update(infer(Facade(), audio, args, model.model, model.model.llm))
    result["after_inference_rss"] = rss()
    del model
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    result["unloaded_rss"] = rss()
    result.update({f"unloaded_{k}": v for k, v in cuda_figures().items()})
    started = time.perf_counter()
    model = build()
    result["reload_seconds"] = time.perf_counter() - started
    return result


def infer(
    runner: Any, audio: dict[float, Any], args: argparse.Namespace, model: Any, generator: Any
) -> dict[str, Any]:
    """Latency, encoder, prefill and per-token times of ``runner.transcribe``; ``model`` is
    funasr's model (its encoder is timed), ``generator`` what makes the tokens."""
    encoder_times: list[float] = []
    clocks: list[TokenClock] = []
    out: dict[str, Any] = {}
    runner.transcribe(audio[5.0], 16000, language="en")  # warm-up: first-call allocations
    with timed_calls(model, "encode", encoder_times), token_clocks(generator, clocks):
        for seconds, samples in audio.items():
            encoder_times.clear()
            clocks.clear()
            started = time.perf_counter()
            runner.transcribe(samples, 16000, language="en")
            out[f"latency_{seconds:.0f}s"] = time.perf_counter() - started
            if seconds == 10.0:
                out["encoder_10s_seconds"] = sum(encoder_times)
                times = [t for clock in clocks for t in clock.token_times]
                out["prefill_10s_seconds"] = sum(c.token_times[0] - c.started for c in clocks)
                out["decoded_tokens"] = len(times)
                steps = sum(len(c.token_times) - 1 for c in clocks)
                decoding = sum(c.token_times[-1] - c.token_times[0] for c in clocks)
                out["decode_ms_per_token"] = 1000 * decoding / max(steps, 1)
    out["peak_rss"] = peak_rss()
    return out


def measure_app_at_rest(models: Path, runs: int = 3) -> dict[str, Any]:
    """The tray app at rest: launch → tray icon shown, and RSS before the first dictation.

    Runs the real app on a private Xvfb + tray host + PulseAudio (the end-to-end tests'
    harness), so the microphone stream is open as it is for a user.
    """
    sys.path.insert(0, str(REPO / "tests"))
    from desktop.harness import DesktopSession

    launches: list[dict[str, float]] = []
    with DesktopSession() as desktop:
        for run in range(runs):
            scratch = desktop.root / f"app-{run}"
            report = scratch / "report.jsonl"
            environment = {
                "NANODICTATE_MODELS_DIR": str(models),
                "NANODICTATE_CONFIG_DIR": str(scratch / "config"),
                "NANODICTATE_DATA_DIR": str(scratch / "data"),
                "NANODICTATE_CACHE_DIR": str(scratch / "cache"),
                "NANODICTATE_TEST_REPORT": str(report),
            }
            launched = time.perf_counter()
            app = desktop.popen(
                [sys.executable, "-m", "nanodictate"], name=f"app{run}", env=environment
            )

            def started(report: Path = report) -> dict[str, Any] | None:
                for line in report.read_text().splitlines() if report.exists() else []:
                    event = json.loads(line)
                    if event.get("event") == "started":
                        return dict(event)
                return None

            event = desktop.wait_for(started, 30, "the tray app to start")
            seen = time.perf_counter() - launched
            time.sleep(3.0)  # at rest: services started, microphone stream open
            status = Path(f"/proc/{app.pid}/status").read_text()
            rest_kb = next(
                int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS")
            )
            modules = Path(f"/proc/{app.pid}/maps").read_text()
            launches.append(
                {
                    "launch_to_started_s": seen,
                    "tray_shown_ms": float(event["tray_ms"]),
                    "rss_at_rest_mb": rest_kb / 1024,
                    "torch_loaded": float("libtorch" in modules),
                }
            )
            app.terminate()
            app.wait(timeout=20)
    best = min(launches, key=lambda launch: launch["launch_to_started_s"])
    return {"runs": launches, **best}


# ------------------------------------------------------------------------ driver


def machine() -> dict[str, Any]:
    import torch
    from common import cpu_name

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "gpu": gpu,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def llamacpp_peer(args: argparse.Namespace) -> dict[str, Any]:
    """llama.cpp's CPU runtime on the same decoder shapes (bench/llamacpp.py), run after our
    sides so both figures come from one run on one machine."""
    if args.smoke:
        return {"skipped": "smoke run (the peer is converted and timed in the full run only)"}
    if args.device != "cpu":
        return {"skipped": f"our side ran on {args.device}; the peer is llama.cpp's CPU runtime"}
    try:
        return llamacpp.section(Path(args.replica), args.threads, args.tokens, args.timeout)
    except (OSError, RuntimeError, subprocess.SubprocessError) as error:
        # Our columns are measured by now: a failing peer is reported, not fatal.
        return {"skipped": f"failed: {error}"}


def run_side(side: str, precision: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [
        sys.executable, __file__, "--side", side, "--precision", precision,
        "--replica", args.replica, "--vad", args.vad, "--cache", args.cache,
        "--device", args.device, "--tokens", str(args.tokens), "--threads", str(args.threads),
    ]  # fmt: skip
    if args.speech:
        command += ["--speech", args.speech]
    done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{side}/{precision} failed:\n{done.stderr[-4000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


ROWS = [
    ("load time (s)", "load_seconds", 1.0, "{:.2f}"),
    ("load, INT8 layers packed (s)", "load_and_pack_seconds", 1.0, "{:.2f}"),
    ("peak RSS during load (MB)", "load_peak_rss", MB, "{:.0f}"),
    ("RSS loaded, above baseline (MB)", "loaded_above_baseline", MB, "{:.0f}"),
    ("peak / loaded (model only)", "peak_over_loaded", 1.0, "{:.2f}"),
    ("encoder, 10 s audio (s)", "encoder_10s_seconds", 1.0, "{:.3f}"),
    ("prefill, 10 s audio (s)", "prefill_10s_seconds", 1.0, "{:.3f}"),
    ("decode (ms/token)", "decode_ms_per_token", 1.0, "{:.1f}"),
    ("latency 5 s utterance (s)", "latency_5s", 1.0, "{:.2f}"),
    ("latency 10 s utterance (s)", "latency_10s", 1.0, "{:.2f}"),
    ("RSS after unload, above baseline (MB)", "unloaded_above_baseline", MB, "{:.0f}"),
    ("worst of 3 unloads, above baseline (MB)", "unload_cycles_worst_above_baseline", MB, "{:.0f}"),
    ("reload (s)", "reload_seconds", 1.0, "{:.2f}"),
    ("reload, then a 5 s utterance's text (s)", "reload_then_5s_seconds", 1.0, "{:.2f}"),
    ("CUDA peak allocated (MB)", "cuda_peak", MB, "{:.0f}"),
    ("CUDA peak reserved (MB)", "cuda_peak_reserved", MB, "{:.0f}"),
    ("nvidia-smi, this process, loaded (MB)", "loaded_cuda_nvidia_smi_process", MB, "{:.0f}"),
    ("CUDA reserved after unload (MB)", "unloaded_cuda_reserved", MB, "{:.0f}"),
    (
        "nvidia-smi, this process, after unload (MB)",
        "unloaded_cuda_nvidia_smi_process",
        MB,
        "{:.0f}",
    ),
]


def derive(result: dict[str, Any]) -> dict[str, Any]:
    base = result["baseline_rss"]
    result["loaded_above_baseline"] = result["loaded_rss"] - base
    result["unloaded_above_baseline"] = result["unloaded_rss"] - base
    loaded = max(result["loaded_above_baseline"], 1)
    result["peak_over_loaded"] = (result["load_peak_rss"] - base) / loaded
    if "loaded_cuda_peak_allocated" in result:
        result["cuda_peak"] = max(
            result.get("loaded_cuda_peak_allocated", 0),
            result.get("unloaded_cuda_peak_allocated", 0),
        )
        result["cuda_peak_reserved"] = result.get("unloaded_cuda_peak_reserved", 0)
    return result


def table(columns: dict[str, dict[str, Any]], default_key: str) -> str:
    names = list(columns)
    lines = [
        "| measure | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for label, key, scale, fmt in ROWS:
        if not any(key in columns[n] for n in names):
            continue
        cells = []
        for name in names:
            value = columns[name].get(key)
            cell = "–" if value is None else fmt.format(value / scale)
            reference = columns[default_key].get(key)
            if name != default_key and value is not None and reference:
                cell += f" ({value / reference:.2f}×)"
            cells.append(cell)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny replica, seconds (for CI)")
    parser.add_argument("--replica", help="replica folder (default: built once and cached)")
    parser.add_argument("--vad", help="FSMN-VAD folder (default: the test cache)")
    parser.add_argument("--cache", help="INT8 cache folder for our side")
    parser.add_argument("--device", choices=["cpu", "cuda"], default=None)
    parser.add_argument("--precisions", default="int8,bf16,fp32")
    parser.add_argument("--tokens", type=int, default=32, help="decoded tokens, pinned")
    parser.add_argument("--threads", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--out", type=Path, help="JSON file (default: bench/out/<machine>.json)")
    parser.add_argument("--timeout", type=int, default=1800)
    parser.add_argument("--speech", help="folder of prepared speech WAVs (no espeak-ng needed)")
    parser.add_argument("--no-app", action="store_true", help="skip the tray app at rest")
    parser.add_argument("--side", choices=["ours", "default"], help=argparse.SUPPRESS)
    parser.add_argument("--precision", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.side:  # a worker process: one measurement, one JSON line on stdout
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):
            measure = measure_ours if args.side == "ours" else measure_default
            result = measure(args)
        print(json.dumps(result))
        return 0

    import torch

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    with tempfile.TemporaryDirectory(prefix="nanodictate-bench-") as scratch:
        if args.vad is None:
            from nanodictate.testing.vad_model import ensure_test_vad_model

            args.vad = str(ensure_test_vad_model())
        if args.smoke:
            from nanodictate.testing.replica import build_replica

            args.replica = str(build_replica(Path(scratch) / "replica"))
            args.tokens = min(args.tokens, 4)
        elif args.replica is None:
            from common import full_replica

            args.replica = str(full_replica())
        args.cache = args.cache or str(Path(scratch) / "int8-cache")

        columns: dict[str, dict[str, Any]] = {}
        columns["default fp32"] = derive(run_side("default", "fp32", args))
        for precision in args.precisions.split(","):
            if precision == "int8":
                # The very first INT8 load quantizes and writes the cache; every later load
                # (after each idle unload) reads the cache. Both are measured.
                columns["ours int8 first"] = derive(run_side("ours", precision, args))
            columns[f"ours {precision}"] = derive(run_side("ours", precision, args))
        peers = llamacpp_peer(args)

    app_at_rest: dict[str, Any] | None = None
    if not args.no_app:
        with tempfile.TemporaryDirectory(prefix="nanodictate-bench-app-") as models:
            from nanodictate.testing.replica import build_replica

            # The app at rest never loads a model; a tiny one keeps it from offering a download.
            build_replica(Path(models) / "Fun-ASR-MLT-Nano-2512")
            shutil.copytree(args.vad, Path(models) / "fsmn-vad")
            app_at_rest = measure_app_at_rest(Path(models))

    info = machine()
    kind = "smoke" if args.smoke else f"{args.device}-{info['gpu'] or info['cpu']}"
    header = (
        f"machine: {info['cpu']}, {info['cores']} cores, GPU: {info['gpu'] or 'none'}, "
        f"torch {info['torch']}, device {args.device}, {args.threads} threads, "
        f"{args.tokens} decoded tokens, replica {'tiny' if args.smoke else 'full-size'}"
    )
    print(header)
    print(table(columns, "default fp32"))
    ours = {name: column["decode_ms_per_token"] for name, column in columns.items()}
    ours.pop("ours int8 first", None)  # the same decode as "ours int8"
    ours.pop("default fp32")
    print(llamacpp.table(peers, ours))
    if app_at_rest is not None:
        print(
            f"tray app at rest: launch → 'started' {app_at_rest['launch_to_started_s']:.2f} s "
            f"(icon shown {app_at_rest['tray_shown_ms']:.0f} ms after run_app began), "
            f"RSS {app_at_rest['rss_at_rest_mb']:.0f} MB, torch loaded: "
            f"{bool(app_at_rest['torch_loaded'])}"
        )
    out = args.out or REPO / "bench" / "out" / f"{kind.replace(' ', '_').replace('/', '_')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "machine": info,
                "device": args.device,
                "tokens": args.tokens,
                "smoke": args.smoke,
                "threads": args.threads,
                "results": columns,
                "app_at_rest": app_at_rest,
                "llamacpp": peers,
            },
            indent=2,
        )
    )
    print(f"JSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
