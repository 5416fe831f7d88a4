"""INT4 (experimental) against INT8: decode speed, prefill, memory, conversion, accuracy proxy.

    python bench/int4.py [--threads 2] [--rounds 3] [--tokens 40] [--steps 300] [--group 32]

On the full-size replica's LLM (`common.full_replica`; random weights), loaded straight from
its checkpoint into transformers' Qwen3 and decoded by `decoder_loop.GreedyDecoder`:

* ``int8``: the engine's CPU layout (FBGEMM `DynamicInt8Linear`, fused q/k/v and gate/up,
  INT8 head, `Int8Embedding`), built here from the float weights;
* ``int4``: `int4.convert_llm_to_int4` (group-wise INT4 layers and head, INT8 embedding).

One process loads both (RSS added by each load, the bytes its tensors hold, seconds to
convert) and decodes with them in turns, so that a neighbour's load on a shared CPU (and
``nice``) hits both alike: ms per token is the median interval between consecutive tokens
(``tokens`` of them after a 128-position prompt; median of the rounds), prefill the time to
the first token (best round). Another process measures accuracy against fp32 on one token
sequence (teacher forcing over ``steps`` decode steps): top-1 agreement, relative error of
the logits, and relative error of each kind of linear layer's output on the activations
fp32 saw. A third times one decoder layer's four matrices per group size, beside INT8.
Random weights are no stand-in for the real ones (no outliers): the real-weights WER is
unknown. Prints a table, writes ``bench/results/int4-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

from common import full_replica, machine_basics, rss  # noqa: E402

PROMPT = 128
PRECISIONS = ("int8", "int4")
LLAMA_CPP_Q4_K_M_MS = 30.9  # bench/RESULTS.md, same machine kind, 2026-12-04
LLAMA_CPP_Q8_0_MS = 43.3


def load_float_llm(replica: Path) -> Any:
    """transformers' Qwen3 with the replica's LLM weights in fp32 (no funasr)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from nanodictate.core.asr.weights import open_checkpoint

    config = AutoConfig.from_pretrained(replica / "Qwen3-0.6B")
    llm = AutoModelForCausalLM.from_config(config, torch_dtype=torch.float32)  # type: ignore[no-untyped-call]
    checkpoint = open_checkpoint(replica / "model.pt")
    state = {k.removeprefix("llm."): v for k, v in checkpoint.items() if k.startswith("llm.")}
    missing, _ = llm.load_state_dict(state, strict=False)
    if [name for name in missing if name != "lm_head.weight"]:
        raise RuntimeError(f"replica LLM lacks {missing[:3]}")
    llm.tie_weights()
    return llm.eval()


def convert_int8(llm: Any) -> None:
    """The engine's CPU INT8 layout (weights.load_int8_weights), from float weights."""
    import torch

    from nanodictate.core.asr.decoder_loop import fuse_projections
    from nanodictate.core.asr.int8 import DynamicInt8Linear, Int8Embedding, quantize_rows

    def int8_layer(module: Any) -> DynamicInt8Linear:
        return DynamicInt8Linear(*quantize_rows(module.weight), module.bias)

    fuse_projections(llm)
    for layer in llm.model.layers:
        for parent, name in (
            (layer.self_attn, "qkv_proj"),
            (layer.self_attn, "o_proj"),
            (layer.mlp, "gate_up_proj"),
            (layer.mlp, "down_proj"),
        ):
            setattr(parent, name, int8_layer(getattr(parent, name)))
    embedding = llm.get_input_embeddings()
    llm.lm_head = int8_layer(llm.lm_head)
    llm.set_input_embeddings(Int8Embedding(*quantize_rows(embedding.weight), torch.float32))


def convert(llm: Any, precision: str, group: int) -> None:
    from nanodictate.core.asr.int4 import convert_llm_to_int4

    if precision == "int8":
        convert_int8(llm)
    elif precision == "int4":
        convert_llm_to_int4(llm, group)


def prompt_embeds(decoder: Any, length: int) -> Any:
    """Embeddings of random token ids the tokenizer knows: the scale of a real prompt."""
    import torch

    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 200, (1, length), generator=generator)
    return decoder.embedding(ids)


class _TokenClock:
    """A `decoder_loop.TokenStreamer` that notes when each token was chosen."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def put(self, value: Any) -> None:
        self.times.append(time.perf_counter())

    def end(self) -> None:
        pass


def measure_speed(group: int, rounds: int, tokens: int) -> dict[str, Any]:
    """Both precisions in this process, decoded in turns: on a shared CPU (and under
    ``nice``) a neighbour's burst then hits both alike. ms/token is the median interval
    between consecutive tokens (a burst spoils a few intervals, not the median); prefill is
    the time to the first token, best of the rounds."""
    import gc

    import torch

    from nanodictate.core.asr.decoder_loop import GreedyDecoder
    from nanodictate.core.asr.int8 import module_bytes
    from nanodictate.core.asr.memory import trim_heap

    replica = full_replica()
    decoders: dict[str, Any] = {}
    out: dict[str, Any] = {"group_size": group, "tokens": tokens, "prompt": PROMPT}
    for precision in PRECISIONS:
        before = rss()
        llm = load_float_llm(replica)
        started = time.perf_counter()
        convert(llm, precision, group)
        converted = time.perf_counter() - started
        gc.collect()
        trim_heap()
        decoders[precision] = GreedyDecoder(llm, torch.float32)
        out[precision] = {
            "convert_s": converted,
            "model_bytes": module_bytes(llm).get("cpu", 0),
            "rss_added_bytes": rss() - before,
        }
    intervals: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    first_token: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    with torch.inference_mode():
        embeds = prompt_embeds(decoders["int8"], PROMPT)
        for round_index in range(rounds + 1):  # round 0 warms up
            for precision, decoder in decoders.items():
                clock = _TokenClock()
                started = time.perf_counter()
                decoder.generate(embeds, tokens, tokens, streamer=clock)
                if round_index == 0:
                    continue
                first_token[precision].append(clock.times[0] - started)
                steps = [b - a for a, b in zip(clock.times, clock.times[1:], strict=False)]
                intervals[precision].append(1000 * statistics.median(steps))
    for precision in PRECISIONS:
        out[precision]["ms_per_token"] = statistics.median(intervals[precision])
        out[precision]["ms_per_token_rounds"] = intervals[precision]
        out[precision]["prefill_s"] = min(first_token[precision])
    return out


def teacher_forced_logits(decoder: Any, embeds: Any, tokens: list[int]) -> Any:
    """Logits at each decode step with ``tokens`` fed back, whatever this model would choose."""
    import torch

    length = embeds.shape[1] + len(tokens)
    cache = decoder.new_cache(length, embeds.dtype, embeds.device)
    cos, sin = decoder.rope_table(length, embeds.dtype, embeds.device)
    rows, x, position = [], embeds, 0
    for token in tokens:
        steps = x.shape[1]
        window = slice(position, position + steps)
        rows.append(decoder.forward(x, cache, position, cos[window], sin[window]).float())
        position += steps
        x = decoder.embedding(torch.tensor([[token]]))
    return torch.cat(rows)


def measure_accuracy(group: int, steps: int) -> dict[str, Any]:
    import torch

    from nanodictate.core.asr.decoder_loop import GreedyDecoder

    replica = full_replica()
    reference_llm = load_float_llm(replica)
    reference = GreedyDecoder(reference_llm, torch.float32)
    captured: dict[str, list[torch.Tensor]] = {}
    kinds = ("qkv_proj", "o_proj", "gate_up_proj", "down_proj")

    def keep(name: str) -> Any:
        def hook(_module: Any, inputs: tuple[Any, ...], _output: Any) -> None:
            if len(captured.setdefault(name, [])) < 8:
                captured[name].append(inputs[0].detach().clone())

        return hook

    with torch.inference_mode():
        embeds = prompt_embeds(reference, PROMPT)
        tokens = reference.generate(embeds, steps, steps)
        handles = [
            module.register_forward_hook(keep(name))
            for name, module in reference_llm.named_modules()
            if name.rsplit(".", 1)[-1] in kinds
        ]
        expected = teacher_forced_logits(reference, embeds, tokens)
        for handle in handles:
            handle.remove()
    floats = {name: reference_llm.get_submodule(name) for name in captured}
    # Random weights make near-ties: fp32's best leads its runner-up by this many standard
    # deviations of the logits (of the tokens the tokenizer has), median over the steps.
    known = expected[:, : reference_llm.get_input_embeddings().weight.abs().sum(1).count_nonzero()]
    best_two = known.topk(2, dim=-1).values
    margin = (best_two[:, 0] - best_two[:, 1]) / known.std(dim=-1)
    out: dict[str, Any] = {
        "steps": steps,
        "group_size": group,
        "fp32_margin": float(margin.median()),
    }
    for precision in ("int8", "int4"):
        llm = load_float_llm(replica)
        convert(llm, precision, group)
        decoder = GreedyDecoder(llm, torch.float32)
        with torch.inference_mode():
            got = teacher_forced_logits(decoder, embeds, tokens)
            errors: dict[str, list[float]] = {kind: [] for kind in kinds}
            for name, inputs in captured.items():
                quantized = llm.get_submodule(name)
                for x in inputs:
                    want = floats[name](x)
                    errors[name.rsplit(".", 1)[-1]].append(
                        float((quantized(x) - want).norm() / want.norm())
                    )
        choice = got.argmax(-1, keepdim=True)
        agree = (choice[:, 0] == expected.argmax(-1)).float().mean()
        # how far down fp32's ranking the quantized model's choice sits (0: fp32's own)
        rank = (expected > expected.gather(1, choice)).sum(-1)
        out[precision] = {
            "top1_agreement": float(agree),
            "choice_in_fp32_top5": float((rank < 5).float().mean()),
            "logits_relative_error": float((got - expected).norm() / expected.norm()),
            "layer_relative_error": {kind: statistics.mean(v) for kind, v in errors.items()},
        }
        del llm, decoder
    return out


def measure_groups(rounds: int) -> list[dict[str, Any]]:
    """One decoder layer's four matrices (full-size shapes, random weights), one row as in a
    decode step: per group size (and FBGEMM INT8 for scale) the median time of a pass over
    the four, passes interleaved, and the output's relative error."""
    import torch

    from nanodictate.core.asr.int4 import GROUP_SIZES, Int4Linear, quantize_groups
    from nanodictate.core.asr.int8 import DynamicInt8Linear, quantize_rows

    generator = torch.Generator().manual_seed(0)
    shapes = [(4096, 1024), (1024, 2048), (6144, 1024), (1024, 3072)]
    weights = [torch.randn(shape, generator=generator) * 0.02 for shape in shapes]
    inputs = [torch.randn(1, shape[1], generator=generator) for shape in shapes]
    kinds: dict[str, list[Any]] = {
        "int8": [DynamicInt8Linear(*quantize_rows(w), None) for w in weights]
    }
    for group in GROUP_SIZES:
        cpu = torch.device("cpu")
        kinds[str(group)] = [Int4Linear(quantize_groups(w, group), None, cpu) for w in weights]
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    with torch.inference_mode():
        for _ in range(rounds * 20):
            for kind, layers in kinds.items():
                begun = time.perf_counter()
                for layer, x in zip(layers, inputs, strict=True):
                    layer(x)
                times[kind].append(1000 * (time.perf_counter() - begun))
        rows = []
        for kind, layers in kinds.items():
            error = statistics.mean(
                float((layer(x) - x @ w.t()).norm() / (x @ w.t()).norm())
                for layer, w, x in zip(layers, weights, inputs, strict=True)
            )
            median = statistics.median(times[kind])
            rows.append({"kind": kind, "ms_per_layer": median, "error": error})
    return rows


def child(args: argparse.Namespace, *mode: str) -> dict[str, Any] | list[dict[str, Any]]:
    command = [sys.executable, __file__, *mode, "--threads", str(args.threads)]
    command += ["--rounds", str(args.rounds), "--steps", str(args.steps)]
    command += ["--group", str(args.group), "--tokens", str(args.tokens)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{mode} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] | list[dict[str, Any]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--group", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=40)
    parser.add_argument("--speed", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--accuracy", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--groups", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    args = parser.parse_args(argv)
    if args.speed or args.accuracy or args.groups:
        import torch

        torch.set_num_threads(args.threads)
        if args.speed:
            result: Any = measure_speed(args.group, args.rounds, args.tokens)
        elif args.accuracy:
            result = measure_accuracy(args.group, args.steps)
        else:
            result = measure_groups(args.rounds)
        print(json.dumps(result))
        return 0
    full_replica()  # built once, before the timed children
    groups = child(args, "--groups")
    speed = child(args, "--speed")
    accuracy = child(args, "--accuracy")
    assert isinstance(groups, list) and isinstance(accuracy, dict) and isinstance(speed, dict)
    print("one decoder layer, 1 row   ms (4 matrices)   output error")
    for row in groups:
        kind = "int8 FBGEMM" if row["kind"] == "int8" else f"int4, group {row['kind']}"
        print(f"{kind:<26}{row['ms_per_layer']:>16.2f}{row['error']:>15.4f}")
    print(f"\n{'':<26}{'int8':>12}{'int4':>12}")
    lines = [
        ("decode (ms/token)", "ms_per_token", 1.0, ".1f"),
        ("prefill 128 positions (s)", "prefill_s", 1.0, ".2f"),
        ("model tensors (MB)", "model_bytes", 1e-6, ".0f"),
        ("RSS added by the load (MB)", "rss_added_bytes", 1e-6, ".0f"),
        ("conversion (s)", "convert_s", 1.0, ".1f"),
    ]
    for label, key, factor, fmt in lines:
        cells = "".join(f"{speed[p][key] * factor:>12{fmt}}" for p in PRECISIONS)
        print(f"{label:<26}{cells}")
    for precision in ("int8", "int4"):
        figures = accuracy[precision]
        print(
            f"{precision}: top-1 agreement with fp32 {figures['top1_agreement']:.3f} over "
            f"{accuracy['steps']} steps, its choice in fp32's top 5 "
            f"{figures['choice_in_fp32_top5']:.3f}, "
            f"logits error {figures['logits_relative_error']:.4f}, "
            "layer errors "
            + ", ".join(f"{k} {v:.4f}" for k, v in figures["layer_relative_error"].items())
        )
    print(f"fp32's best leads its runner-up by {accuracy['fp32_margin']:.2f} logit std (median)")
    print(
        f"llama.cpp on this machine kind (RESULTS.md): Q4_K_M {LLAMA_CPP_Q4_K_M_MS} ms/token, "
        f"Q8_0 {LLAMA_CPP_Q8_0_MS}"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"int4-{time.strftime('%Y%m%d-%H%M%S')}.json"
    report = {
        "machine": machine_basics(),
        "threads": args.threads,
        "groups": groups,
        "speed": speed,
        "accuracy": accuracy,
        "llama_cpp_reference_ms": {"Q4_K_M": LLAMA_CPP_Q4_K_M_MS, "Q8_0": LLAMA_CPP_Q8_0_MS},
    }
    path.write_text(json.dumps(report, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
