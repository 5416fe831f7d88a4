"""CPU int8 linear kernels for the INT8 reload: what each costs to make ready, and per token.

    nice -n 10 python bench/reload_kernels.py [--threads 2] [--rounds 5] [--forms fbgemm ...]

For Qwen3-0.6B's decoder shapes (28 layers of fused q/k/v, o, fused gate/up and down, and the
151,936-row head; random int8 rows, per-row scales), each form in turn:

* ``ready_s``: seconds from the int8 rows in memory to a layer that can multiply (prepack);
* ``ms_token``: one decode step's matrix calls (one row through every matrix, in model
  order), median of ``--rounds``;
* ``ms_prefill``: the same with 160 rows (a prompt), once per round;
* ``error``: relative error against the fp32 product of the dequantized weights.

Forms: ``fbgemm`` (today's `DynamicInt8Linear`: quantized::linear_prepack on the x86 engine),
``onednn-dynamic`` (the same ops with the onednn quantized engine), ``onednn-qlinear``
(onednn::qlinear_prepack and qlinear_pointwise, the activations quantized in torch), and,
asked for by name, ``int-mm`` (torch._int_mm on the unpacked int8 rows, activations
quantized per row in torch).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from common import machine_basics, rss  # noqa: E402

LAYERS = 28
SHAPES = ((4096, 1024), (1024, 2048), (6144, 1024), (1024, 3072))
HEAD = (151936, 1024)

Layer = Callable[[torch.Tensor], torch.Tensor]


def _quantized_weight(weight: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch._make_per_channel_quantized_tensor(
            weight, scale.double(), torch.zeros(weight.shape[0], dtype=torch.long), 0
        )


def _dynamic(engine: str) -> Callable[[torch.Tensor, torch.Tensor], Layer]:
    def make(weight: torch.Tensor, scale: torch.Tensor) -> Layer:
        torch.backends.quantized.engine = engine
        packs = [
            torch.ops.quantized.linear_prepack(_quantized_weight(weight[r : r + 65536], s), None)
            for r, s in ((r, scale[r : r + 65536]) for r in range(0, weight.shape[0], 65536))
        ]

        def run(x: torch.Tensor) -> torch.Tensor:
            out = [torch.ops.quantized.linear_dynamic(x, p, True) for p in packs]
            return out[0] if len(out) == 1 else torch.cat(out, dim=-1)

        return run

    return make


def _onednn_qlinear(weight: torch.Tensor, scale: torch.Tensor) -> Layer:
    packed = torch.ops.onednn.qlinear_prepack(weight, None)
    zero = torch.zeros(weight.shape[0], dtype=torch.long)

    def run(x: torch.Tensor) -> torch.Tensor:
        # 7-bit activations (reduce_range), as FBGEMM's: with 8 bits the AVX2 kernel's int16
        # sums saturate (relative error 0.11 against 2e-7 with 7 bits, measured).
        qx = torch.quantize_per_tensor_dynamic(x, torch.quint8, True)
        y: torch.Tensor = torch.ops.onednn.qlinear_pointwise(
            qx.int_repr(), qx.q_scale(), qx.q_zero_point(), packed, scale, zero, None,
            1.0, 0, torch.float32, "none", [], "",
        )  # fmt: skip
        return y

    return run


def _int_mm(weight: torch.Tensor, scale: torch.Tensor) -> Layer:
    transposed = weight.t()

    def run(x: torch.Tensor) -> torch.Tensor:
        x_scale = x.abs().amax(dim=-1, keepdim=True).clamp(min=1e-12) / 127
        qx = torch.round(x / x_scale).to(torch.int8)
        return torch._int_mm(qx, transposed) * (x_scale * scale)

    return run


FORMS: dict[str, Callable[[torch.Tensor, torch.Tensor], Layer]] = {
    "fbgemm": _dynamic("x86"),
    "onednn-dynamic": _dynamic("onednn"),
    "onednn-qlinear": _onednn_qlinear,
    "int-mm": _int_mm,
}


def measure(form: str, rounds: int) -> dict[str, Any]:
    generator = torch.Generator().manual_seed(0)
    shapes = [shape for _ in range(LAYERS) for shape in SHAPES] + [HEAD]
    sources = [
        (
            torch.randint(-127, 128, shape, generator=generator, dtype=torch.int8),
            torch.rand(shape[0], generator=generator) / 500 + 1e-4,
        )
        for shape in shapes
    ]
    before = rss()
    started = time.perf_counter()
    layers = [FORMS[form](w, s) for w, s in sources]
    ready = time.perf_counter() - started
    held = rss() - before
    probe = torch.randn(4, 1024, generator=generator)
    w, s = sources[0]
    expected = probe @ (w.float() * s[:, None]).t()
    error = float((layers[0](probe) - expected).norm() / expected.norm())
    if form != "int-mm":
        del sources
    gc.collect()
    x1 = torch.randn(1, 1024, generator=generator)
    prompt = {1024: torch.randn(160, 1024), 2048: torch.randn(160, 2048)}
    prompt[3072] = torch.randn(160, 3072)
    step: list[float] = []
    prefill: list[float] = []
    for _ in range(rounds + 1):  # the first round warms up
        started = time.perf_counter()
        for layer, (_, columns) in zip(layers, shapes, strict=True):
            layer(x1 if columns == 1024 else torch.randn(1, columns))
        step.append(1000 * (time.perf_counter() - started))
        started = time.perf_counter()
        for layer, (_, columns) in zip(layers[:-1], shapes[:-1], strict=True):
            layer(prompt[columns])
        prefill.append(1000 * (time.perf_counter() - started))
    return {
        "form": form,
        "ready_s": ready,
        "held_mb": held / 1e6,
        "ms_token": statistics.median(step[1:]),
        "ms_prefill_160": statistics.median(prefill[1:]),
        "error": error,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    # int-mm is left out by default: its 160-row pass took 78 s here
    parser.add_argument("--forms", nargs="+", default=[f for f in FORMS if f != "int-mm"])
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    for form in args.forms:
        row = measure(form, args.rounds)
        rows.append(row)
        print(
            f"{form:<16} ready {row['ready_s']:6.2f} s  held {row['held_mb']:6.0f} MB  "
            f"{row['ms_token']:6.1f} ms/token  prefill(160) {row['ms_prefill_160']:7.1f} ms  "
            f"error {row['error']:.4f}",
            flush=True,
        )
        gc.collect()
    print(json.dumps({"machine": machine_basics(), "threads": args.threads, "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
