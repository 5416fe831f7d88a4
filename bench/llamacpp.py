"""llama.cpp's CPU runtime as a peer: the replica's Qwen3 decoder, converted with llama.cpp's
own tools, decoded one token at a time (as our greedy decode does), beside the machine's memory
read bandwidth and the floor it sets.

    python bench/llamacpp.py            # the peer alone: bandwidth, Q8_0 and Q4_K_M
    python bench/run.py                 # the same section, beside our engine, in one run

Needs ``llama-cpp-python`` (see bench/README.md); without it the section says so and is skipped.

How the GGUF files are made, once, into the user cache folder:

1. the ``llm.*`` tensors of the replica's ``model.pt`` become a Hugging Face Qwen3 folder
   (``model.safetensors`` beside the replica's ``Qwen3-0.6B/`` config and tokenizer; the head is
   tied to the embedding, as in the published Qwen3-0.6B, so it is not stored twice);
2. llama.cpp's ``convert_hf_to_gguf.py`` and ``gguf-py`` (from the sdist of the installed
   llama-cpp-python version, ``vendor/llama.cpp``) write Q8_0 directly, and BF16;
3. llama.cpp's quantizer (``llama_model_quantize``, the function ``llama-quantize`` calls, reached
   through the Python binding) turns the BF16 file into Q4_K_M.

The replica's tokenizer is trained here, so the converter cannot recognise its pre-tokenizer from
its hash; it is declared as ``qwen2``, the real Qwen3's. Decode speed does not depend on it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from importlib import util
from pathlib import Path
from typing import Any

PACKAGE = "llama-cpp-python"
INSTALL = (
    'CMAKE_ARGS="-DGGML_NATIVE=ON -DGGML_BLAS=OFF" '
    f"nice -n 10 .venv/bin/pip install --no-binary {PACKAGE} {PACKAGE}==0.3.36"
)
QUANTS = ("Q8_0", "Q4_K_M")
LLAMA_FTYPE_MOSTLY_Q4_K_M = 15  # llama.h's enum llama_ftype
PROMPT_TOKENS = 160  # ≈ a 10 s utterance's audio embeddings and prompt, decoded after them
MB = 1e6  # decimal, as the "596 MB" of INT8 weights
GB = 1e9


def unavailable() -> str | None:
    """Why the peer cannot run here, or None when it can."""
    if util.find_spec("llama_cpp") is None:
        return f"{PACKAGE} is not installed (bench/README.md: {INSTALL})"
    return None


def peer_version() -> str:
    """The binding's version (also where ``LLAMA_CPP_LIB_PATH`` points it at other libraries)."""
    import llama_cpp

    return str(llama_cpp.__version__)


def cache_folder() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("nanodictate-bench")) / f"llamacpp-{peer_version()}"


# ------------------------------------------------------------------------ converting


def converter_source(override: Path | None) -> Path:
    """llama.cpp's tree holding ``convert_hf_to_gguf.py``: ``override``, else the installed
    version's sdist (``pip download``, once), of which only the converter's files are kept."""
    if override is not None:
        return override
    source = cache_folder() / "llama.cpp"
    if (source / "convert_hf_to_gguf.py").is_file():
        return source
    version = peer_version()
    with tempfile.TemporaryDirectory(prefix="llamacpp-sdist-") as scratch:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary",
             ":all:", f"{PACKAGE}=={version}", "--dest", scratch],
            check=True,
        )  # fmt: skip
        sdist = next(Path(scratch).glob("*.tar.gz"))
        prefix = f"{sdist.name.removesuffix('.tar.gz')}/vendor/llama.cpp/"
        wanted = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/")
        with tarfile.open(sdist) as archive:
            members = [
                member
                for member in archive.getmembers()
                if member.name.startswith(prefix) and member.name[len(prefix) :].startswith(wanted)
            ]
            for member in members:
                member.name = member.name[len(prefix) :]
            archive.extractall(source, members=members, filter="data")
    return source


def export_hf_decoder(replica: Path, out: Path) -> Path:
    """The replica's decoder as a Hugging Face Qwen3 folder: the ``llm.*`` tensors of
    ``model.pt`` without their prefix, and the config and tokenizer of ``Qwen3-0.6B/``."""
    import torch
    from safetensors.torch import save_file

    llm_dir = replica / "Qwen3-0.6B"
    config = json.loads((llm_dir / "config.json").read_text())
    checkpoint = torch.load(replica / "model.pt", map_location="cpu", mmap=True, weights_only=True)
    state = checkpoint.get("state_dict", checkpoint)
    tensors = {
        name.removeprefix("llm."): tensor.contiguous()
        for name, tensor in state.items()
        if name.startswith("llm.")
    }
    if config.get("tie_word_embeddings"):
        tensors.pop("lm_head.weight", None)
    out.mkdir(parents=True, exist_ok=True)
    for item in llm_dir.iterdir():
        shutil.copy2(item, out / item.name)
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    return out


def run_converter(source: Path, hf_dir: Path, outfile: Path, outtype: str) -> None:
    """This process becomes llama.cpp's converter (its ``main``), with the replica's
    pre-tokenizer declared as the real Qwen3's (see the module's docstring)."""
    import runpy

    sys.path[:0] = [str(source), str(source / "gguf-py")]
    from conversion import base  # llama.cpp's converter package

    base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "qwen2"
    sys.argv = ["convert_hf_to_gguf.py", str(hf_dir), "--outfile", str(outfile)]
    sys.argv += ["--outtype", outtype]
    runpy.run_path(str(source / "convert_hf_to_gguf.py"), run_name="__main__")


def quantize(source: Path, target: Path, ftype: int, threads: int) -> None:
    import ctypes

    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = threads
    status = llama_cpp.llama_model_quantize(
        str(source).encode(), str(target).encode(), ctypes.byref(params)
    )
    if status != 0:
        raise RuntimeError(f"llama_model_quantize failed ({status}) for {target.name}")


def gguf_files(
    replica: Path, threads: int, source: Path | None = None, folder: Path | None = None
) -> dict[str, Path]:
    """Q8_0 and Q4_K_M GGUF files of the replica's decoder, made once and reused while the
    replica's ``model.pt`` is older than them."""
    folder = folder or cache_folder()
    folder.mkdir(parents=True, exist_ok=True)
    files = {quant: folder / f"{replica.name}-{quant}.gguf" for quant in QUANTS}
    built = (replica / "model.pt").stat().st_mtime
    if all(path.is_file() and path.stat().st_mtime > built for path in files.values()):
        return files
    tree = converter_source(source)
    print(f"converting {replica.name}'s decoder to GGUF in {folder} (once)…", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="llamacpp-convert-", dir=folder) as scratch:
        hf_dir = export_hf_decoder(replica, Path(scratch) / "hf")
        bf16 = Path(scratch) / "bf16.gguf"
        for outfile, outtype in ((files["Q8_0"], "q8_0"), (bf16, "bf16")):
            done = subprocess.run(
                [sys.executable, __file__, "--convert", str(hf_dir), "--outfile", str(outfile),
                 "--outtype", outtype, "--source", str(tree)],
                capture_output=True, text=True,
            )  # fmt: skip
            if done.returncode != 0:
                failure = done.stderr[-4000:]
                raise RuntimeError(f"llama.cpp's converter ({outtype}) failed:\n{failure}")
        quantize(bf16, files["Q4_K_M"], LLAMA_FTYPE_MOSTLY_Q4_K_M, threads)
    return files


# ------------------------------------------------------------------------ measuring


def read_bandwidth(threads: int, size: int = 1 << 30, repeats: int = 7) -> float:
    """Bytes per second a sum over a 1 GiB float32 array reads (far beyond the caches), on
    ``threads`` threads, best of ``repeats``: what streaming the weights once can reach."""
    import torch

    torch.set_num_threads(threads)
    block = torch.ones(size // 4, dtype=torch.float32)
    block.sum()  # first touch: pages mapped before timing
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        block.sum()
        seconds.append(time.perf_counter() - started)
    return size / min(seconds)


def int8_weight_bytes(config: dict[str, Any]) -> int:
    """Bytes of the decoder's INT8 matrices one token reads: every layer's projections and the
    head. The embedding is left out: a token reads one row of it."""
    hidden, ffn = int(config["hidden_size"]), int(config["intermediate_size"])
    heads, kv_heads = int(config["num_attention_heads"]), int(config["num_key_value_heads"])
    head_dim = int(config.get("head_dim") or hidden // heads)
    q, kv = heads * head_dim, kv_heads * head_dim
    per_layer = hidden * (q + 2 * kv) + q * hidden + 3 * hidden * ffn
    return int(config["num_hidden_layers"]) * per_layer + int(config["vocab_size"]) * hidden


def measure_decode(gguf: Path, threads: int, tokens: int, runs: int) -> dict[str, Any]:
    """llama.cpp's ms per token: after a prompt of :data:`PROMPT_TOKENS`, ``tokens`` calls of
    ``llama_decode`` with one token each, the next token the argmax of the last logits (greedy,
    as ours). One warm-up run, then ``runs`` timed runs from an empty KV cache."""
    import llama_cpp as ll
    import numpy as np
    import psutil

    baseline = psutil.Process().memory_info().rss
    ll.llama_backend_init()
    model = ll.llama_model_load_from_file(str(gguf).encode(), ll.llama_model_default_params())
    params = ll.llama_context_default_params()
    params.n_ctx = PROMPT_TOKENS + tokens + 16
    params.n_batch = params.n_ubatch = PROMPT_TOKENS
    params.n_threads = params.n_threads_batch = threads
    context = ll.llama_init_from_model(model, params)
    vocab = ll.llama_vocab_n_tokens(ll.llama_model_get_vocab(model))
    batch = ll.llama_batch_init(PROMPT_TOKENS, 0, 1)

    def decode(ids: list[int], start: int) -> int:
        batch.n_tokens = len(ids)
        for i, token in enumerate(ids):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, start + i, 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = i == len(ids) - 1
        if ll.llama_decode(context, batch) != 0:
            raise RuntimeError("llama_decode failed")
        logits = ll.llama_get_logits_ith(context, -1)
        return int(np.ctypeslib.as_array(logits, shape=(vocab,)).argmax())

    def one_run() -> float:
        ll.llama_memory_clear(ll.llama_get_memory(context), True)
        token = decode([1 + i % 400 for i in range(PROMPT_TOKENS)], 0)
        started = time.perf_counter()
        for step in range(tokens):
            token = decode([token], PROMPT_TOKENS + step)
        return 1000 * (time.perf_counter() - started) / tokens

    one_run()
    per_run = [one_run() for _ in range(runs)]
    result = {
        "ms_per_token": statistics.median(per_run),
        "ms_per_token_runs": per_run,
        "model_bytes": ll.llama_model_size(model),
        "parameters": ll.llama_model_n_params(model),
        "layers": ll.llama_model_n_layer(model),
        "vocab": vocab,
        "rss_above_baseline": psutil.Process().memory_info().rss - baseline,
        "gguf_file_bytes": gguf.stat().st_size,
    }
    ll.llama_batch_free(batch)
    ll.llama_free(context)
    ll.llama_model_free(model)
    return result


def _in_fresh_process(flags: list[str], timeout: float) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, *flags], capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise RuntimeError(f"llamacpp.py {' '.join(flags)} failed:\n{done.stderr[-4000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def section(
    replica: Path, threads: int, tokens: int, timeout: float, runs: int = 5
) -> dict[str, Any]:
    """The benchmark's llama.cpp section: the bandwidth, its floor and each quantization's
    decode rate, each measured in a fresh process; ``{"skipped": why}`` where it cannot run."""
    reason = unavailable()
    if reason is not None:
        return {"skipped": reason}
    config = json.loads((replica / "Qwen3-0.6B" / "config.json").read_text())
    files = gguf_files(replica, threads)
    bandwidth = _in_fresh_process(["--bandwidth", "--threads", str(threads)], timeout)
    weights = int8_weight_bytes(config)
    result: dict[str, Any] = {
        "llama_cpp_python": peer_version(),
        "threads": threads,
        "tokens": tokens,
        "prompt_tokens": PROMPT_TOKENS,
        "read_bandwidth_bytes_per_s": bandwidth["bytes_per_s"],
        "int8_weight_bytes": weights,
        # Other work on the machine slows OpenMP's spinning threads badly: say how busy it was.
        "load_average_1min": os.getloadavg()[0],
        "floor_ms_per_token": 1000 * weights / bandwidth["bytes_per_s"],
        "runtimes": {},
    }
    for quant, path in files.items():
        flags = ["--measure", str(path), "--threads", str(threads), "--tokens", str(tokens)]
        result["runtimes"][f"llama.cpp {quant}"] = _in_fresh_process(
            [*flags, "--runs", str(runs)], timeout
        )
    return result


def table(peers: dict[str, Any], ours: dict[str, float]) -> str:
    """Ours (name → ms/token) beside llama.cpp and the bandwidth floor, relative to Q8_0."""
    if "skipped" in peers:
        return f"llama.cpp peer: skipped — {peers['skipped']}"
    bandwidth = peers["read_bandwidth_bytes_per_s"]
    # A decode path the token clock cannot see reports 0 ms/token: left out, not divided by.
    rows: list[tuple[str, float, float | None]] = [
        (name, ms, peers["int8_weight_bytes"] if name.endswith("int8") else None)
        for name, ms in ours.items()
        if ms > 0
    ]
    for name, figures in peers["runtimes"].items():
        rows.append((name, figures["ms_per_token"], figures["model_bytes"]))
    floor = f"floor: {peers['int8_weight_bytes'] / MB:.0f} MB INT8 at {bandwidth / GB:.1f} GB/s"
    rows.append((floor, peers["floor_ms_per_token"], peers["int8_weight_bytes"]))
    reference = peers["runtimes"].get("llama.cpp Q8_0", {}).get("ms_per_token")
    lines = [
        f"decode, one token at a time ({peers['threads']} threads, {peers['tokens']} tokens "
        f"after a {peers['prompt_tokens']}-token prompt for llama.cpp, median of runs; "
        f"load average {peers['load_average_1min']:.1f} when it began)",
        "| runtime | ms/token | × llama.cpp Q8_0 | weights read/token (MB) | reads at (GB/s) |",
        "|---|---|---|---|---|",
    ]
    for name, ms, weight_bytes in rows:
        ratio = f"{ms / reference:.2f}×" if reference else "–"
        size = "–" if weight_bytes is None else f"{weight_bytes / MB:.0f}"
        rate = "–" if weight_bytes is None else f"{weight_bytes / GB / (ms / 1000):.1f}"
        lines.append(f"| {name} | {ms:.1f} | {ratio} | {size} | {rate} |")
    if reference and ours.get("ours int8", 0) > 0:
        goal = 0.8 * reference
        met = "met" if ours["ours int8"] <= goal else "not met"
        lines.append(f"goal ours int8 ≤ 0.8 × llama.cpp Q8_0 = {goal:.1f} ms/token: {met}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replica", type=Path, help="replica folder (default: the full-size one)")
    parser.add_argument("--threads", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, help="JSON file for the section")
    parser.add_argument("--timeout", type=int, default=1800)
    parser.add_argument("--convert", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--outfile", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--outtype", help=argparse.SUPPRESS)
    parser.add_argument("--source", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--bandwidth", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.convert:  # a worker process: llama.cpp's converter
        run_converter(args.source, args.convert, args.outfile, args.outtype)
        return 0
    if args.measure:  # a worker process: one measurement, one JSON line on stdout
        print(json.dumps(measure_decode(args.measure, args.threads, args.tokens, args.runs)))
        return 0
    if args.bandwidth:
        print(json.dumps({"bytes_per_s": read_bandwidth(args.threads)}))
        return 0

    from common import full_replica, machine_basics

    replica = args.replica or full_replica()
    peers = section(replica, args.threads, args.tokens, args.timeout, args.runs)
    print(table(peers, {}))
    if args.out:
        args.out.write_text(json.dumps({"machine": machine_basics(), "llamacpp": peers}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
