"""INT8 building blocks: per-row symmetric int8 weights and the modules that use them.

One on-disk form serves every device: for each quantized matrix an ``int8`` tensor and one
float scale per output row. From it

* on the CPU, ``DynamicInt8Linear`` prepacks the weights for FBGEMM and quantizes the
  activations on the fly (4.9× faster per token than fp32 on 2 cores; weight-only int8
  matmuls were measured slower than fp32 there);
* on CUDA, ``WeightOnlyInt8Linear`` keeps int8 weights on the GPU and multiplies in the
  activation dtype, so the weights cost one byte per parameter;
* ``Int8Embedding`` looks rows up and dequantizes only those. The LLM's embedding is tied
  to its output head (155.6 M parameters, a fifth of the model), so leaving it in float
  would not be INT8 at all. The head and the embedding share the same int8 rows.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)

INT8_MAX = 127


def quantize_rows(
    weight: torch.Tensor, rows_per_step: int = 4096
) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row int8: ``weight ≈ int8 * scale[:, None]``.

    Works through the rows in steps: the float temporaries of the 151,936-row embedding
    would otherwise add ≈2 GB to the load's peak.
    """
    rows = weight.shape[0]
    quantized = torch.empty(weight.shape, dtype=torch.int8)
    scale = torch.empty(rows, dtype=torch.float32)
    for start in range(0, rows, rows_per_step):
        # a copy: the source may be the read-only memory map of the checkpoint
        block = weight[start : start + rows_per_step].detach().to(torch.float32, copy=True)
        block_scale = block.abs().amax(dim=1).clamp(min=1e-12) / INT8_MAX
        block.div_(block_scale[:, None]).round_().clamp_(-INT8_MAX, INT8_MAX)
        quantized[start : start + rows_per_step] = block.to(torch.int8)
        scale[start : start + rows_per_step] = block_scale
    return quantized, scale


# FBGEMM's prepack does not check its allocations: where memory is short it writes through a
# null pointer and the process dies of SIGSEGV (reproduced under an address-space limit; a
# system that does not overcommit, as Windows, fails allocations the same way). So a pack
# first reserves this many times the block's bytes, which fails as torch's ordinary "can't
# allocate memory" error instead. Its peak was under 3× the int8 block for every shape of
# the model (limits swept 0.3–200 MB above the process's size: no crash at 3×, one at 2×).
_PACK_PEAK_PER_BYTE = 3


def _prepack(weight_int8: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None) -> Any:
    # Released at once: only the address space is taken, never touched, so this costs
    # microseconds where memory overcommits.
    torch.empty(_PACK_PEAK_PER_BYTE * weight_int8.numel(), dtype=torch.int8)
    with warnings.catch_warnings():
        # torch 2.13 deprecates quantized dtypes; FBGEMM's dynamic int8 linear still needs
        # one to prepack, and remains the fastest CPU path we measured.
        warnings.filterwarnings("ignore", message=".*quantize_per_.*deprecated")
        quantized = torch._make_per_channel_quantized_tensor(
            weight_int8,
            scale.double(),
            torch.zeros(weight_int8.shape[0], dtype=torch.long),
            0,
        )
    return torch.ops.quantized.linear_prepack(
        quantized, None if bias is None else bias.detach().float().contiguous()
    )


# What a layer packs from: int8 rows, per-row scales, bias. A callable, so that a layer made
# before it is packed holds only references to the memory-mapped cache (and fused q/k/v or
# gate/up rows are concatenated when packed, not when the model is built).
PackSource = Callable[[], tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]


class DynamicInt8Linear(nn.Module):
    """CPU linear layer: FBGEMM int8 weights, activations quantized per call.

    Matrices taller than ``ROWS_PER_PACK`` (the 151,936-row output head) are packed in row
    blocks: packing copies its input twice, and block by block those copies stay small.
    The activations are quantized the same way for every block, so the result is the same.

    A layer made with `unpacked` packs on its first call, or earlier when `pack` is called
    (`int8_packing` packs a loaded model's layers in the background). ``pack`` may be
    called from two threads at once: the layer is packed once, the other caller waits.
    """

    ROWS_PER_PACK = 65536
    # When any layer last multiplied (time.monotonic()): background packing waits for a
    # pause, because a packing thread beside torch's two compute threads stalls them.
    last_call = 0.0

    def __init__(
        self,
        weight_int8: torch.Tensor,
        scale: torch.Tensor,
        bias: torch.Tensor | None,
        after_pack: Callable[[torch.Tensor], None] | None = None,
    ):
        """Packs now. ``after_pack(block)`` is told when a block of the source is no longer
        needed."""
        super().__init__()
        out_features, in_features = weight_int8.shape
        self._prepare(
            out_features, in_features, bias is not None, lambda: (weight_int8, scale, bias)
        )
        self._after_pack = after_pack
        self.pack()

    @classmethod
    def unpacked(
        cls,
        shape: tuple[int, int],
        has_bias: bool,
        source: PackSource,
        after_pack: Callable[[torch.Tensor], None] | None = None,
    ) -> DynamicInt8Linear:
        """A layer of ``shape`` (out, in) that reads ``source`` only when it is packed."""
        layer = cls.__new__(cls)
        nn.Module.__init__(layer)
        layer._prepare(shape[0], shape[1], has_bias, source)
        layer._after_pack = after_pack
        return layer

    def _prepare(
        self, out_features: int, in_features: int, has_bias: bool, source: PackSource
    ) -> None:
        self.out_features, self.in_features = out_features, in_features
        self.packed_bytes = out_features * in_features + (4 * out_features if has_bias else 0)
        self._source: PackSource | None = source
        self._packs: list[Any] | None = None
        self._pack_lock = threading.Lock()

    @property
    def is_packed(self) -> bool:
        return self._packs is not None

    def pack(self) -> list[Any]:
        """The packed blocks, packing them first if no one has."""
        packs = self._packs
        if packs is not None:
            return packs
        with self._pack_lock:
            if self._packs is None:
                assert self._source is not None
                weight_int8, scale, bias = self._source()
                packs = []
                for start in range(0, self.out_features, self.ROWS_PER_PACK):
                    rows = slice(start, start + self.ROWS_PER_PACK)
                    block = weight_int8[rows]
                    packs.append(_prepack(block, scale[rows], None if bias is None else bias[rows]))
                    if self._after_pack is not None:
                        self._after_pack(block)
                self._packs, self._source, self._after_pack = packs, None, None
            return self._packs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        packs = self._packs
        if packs is None:
            packs = self.pack()
        DynamicInt8Linear.last_call = time.monotonic()
        dtype = x.dtype
        x = x.float()
        # reduce_range avoids int16 overflow in FBGEMM's AVX2 kernels, as torch's own
        # dynamic quantization does on x86.
        outputs = [torch.ops.quantized.linear_dynamic(x, pack, True) for pack in packs]
        y: torch.Tensor = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=-1)
        return y if dtype == torch.float32 else y.to(dtype)

    def extra_repr(self) -> str:
        state = "" if self.is_packed else ", not packed yet"
        return f"in_features={self.in_features}, out_features={self.out_features}, int8{state}"


# The fused kernel is used for one row: a decoding step (and the head only ever sees the last
# position). torch 2.9–2.11's CUDA kernel gives each output to one thread, so its time grows
# with the rows; on an H200 (torch 2.11) the 151,936-row head took 0.68 ms fused for one row,
# 1.2 ms in blocks (0.85 ms, with a 594 MB temporary, dequantized whole), but 5.4 ms fused
# for 16 rows against 1.0 ms in blocks. A prefill goes to cuBLAS in blocks.
FUSED_MAX_ROWS = 1
_fused_checked: dict[tuple[str, torch.dtype], bool] = {}


def fused_int8_matmul_works(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether ``torch._weight_int8pack_mm`` runs, and is right, for this device and dtype.

    Tried once per device and dtype on a tiny problem. torch 2.9 added its CUDA kernel; an
    older torch, another accelerator, or a kernel that rejects the dtype falls back to blocks.
    """
    key = (str(device), dtype)
    known = _fused_checked.get(key)
    if known is not None:
        return known
    works = False
    fused = getattr(torch, "_weight_int8pack_mm", None)
    if fused is not None:
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(3, 64, generator=generator).to(device, dtype)
        weight = torch.randint(-127, 128, (24, 64), generator=generator, dtype=torch.int8)
        scale = torch.rand(24, generator=generator) / 64 + 1e-3
        expected = x.float().cpu() @ (weight.float() * scale[:, None]).t()
        try:
            got = fused(x, weight.to(device), scale.to(device, dtype)).float().cpu()
            error = float((got - expected).norm() / expected.norm())
            works = got.shape == expected.shape and error < 0.02
            if not works:
                log.warning("torch._weight_int8pack_mm is off by %.3g on %s %s", error, *key)
        except (RuntimeError, NotImplementedError) as failure:
            log.info("No fused int8 matmul on %s %s: %s", *key, str(failure).splitlines()[0])
    log.info("INT8 linear layers on %s %s: %s", *key, "fused" if works else "blocks")
    _fused_checked[key] = works
    return works


class WeightOnlyInt8Linear(nn.Module):
    """GPU linear layer: int8 weights in memory, matmul in the activation dtype.

    Never dequantizes a whole matrix: for the 151,936-row output head that made two 297 MiB
    bf16 temporaries (594 MiB; 1.19 GiB in fp32) at every decoded token. Instead, either

    * fused (one row, where `fused_int8_matmul_works`): ``torch._weight_int8pack_mm`` reads
      the int8 weights directly; its only temporaries are fp32 copies of x and the output;
    * blocks (otherwise): up to ``BLOCK_BYTES`` of rows at a time are converted to the
      activation dtype (exact: every int8 fits a bf16 mantissa), multiplied by cuBLAS, and
      the output columns scaled — the per-row scale factors out of the dot product.
    """

    BLOCK_BYTES = 16 << 20  # the largest temporary, whatever the matrix

    weight_int8: torch.Tensor
    scale: torch.Tensor
    bias: torch.Tensor | None

    def __init__(
        self,
        weight_int8: torch.Tensor,
        scale: torch.Tensor,
        bias: torch.Tensor | None,
        fused: bool | None = None,
    ):
        """``fused``: force a path (tests and benchmarks); None chooses per call."""
        super().__init__()
        self.out_features, self.in_features = weight_int8.shape
        self.fused = fused
        self.register_buffer("weight_int8", weight_int8.contiguous())
        self.register_buffer("scale", scale.float())
        self.register_buffer("bias", None if bias is None else bias.detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return int8_linear(x, self.weight_int8, self.scale, self.bias, self.fused)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


def int8_linear(
    x: torch.Tensor,
    weight_int8: torch.Tensor,
    scale: torch.Tensor,
    bias: torch.Tensor | None,
    fused: bool | None = None,
) -> torch.Tensor:
    """``x @ (weight_int8 * scale[:, None]).T + bias`` without a whole dequantized matrix."""
    out_features, in_features = weight_int8.shape
    rows = x.reshape(-1, in_features)
    if fused is None:
        fused = rows.shape[0] <= FUSED_MAX_ROWS and fused_int8_matmul_works(x.device, x.dtype)
    if fused:
        y = torch._weight_int8pack_mm(rows.contiguous(), weight_int8, scale.to(x.dtype))
    else:
        y = _in_blocks(rows, weight_int8, scale)
    if bias is not None:
        y.add_(bias.to(y.dtype))
    return y.reshape(*x.shape[:-1], out_features)


def _in_blocks(x: torch.Tensor, weight_int8: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    out_features, in_features = weight_int8.shape
    out = torch.empty(x.shape[0], out_features, dtype=x.dtype, device=x.device)
    widest = max(in_features, x.shape[0])  # the weight block or the product block
    step = max(1, WeightOnlyInt8Linear.BLOCK_BYTES // (widest * x.element_size()))
    for start in range(0, out_features, step):
        end = min(start + step, out_features)
        weight = weight_int8[start:end].to(x.dtype)
        product = torch.matmul(x, weight.t())
        del weight
        # fp32 scale (promoted), rounded once into the output
        torch.mul(product, scale[start:end], out=out[:, start:end])
    return out


class Int8Embedding(nn.Module):
    """Embedding table in int8; dequantizes only the rows that are looked up."""

    weight_int8: torch.Tensor
    scale: torch.Tensor

    def __init__(self, weight_int8: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype):
        super().__init__()
        self.num_embeddings, self.embedding_dim = weight_int8.shape
        self.output_dtype = dtype
        self.register_buffer("weight_int8", weight_int8)
        self.register_buffer("scale", scale.float())

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        rows = nn.functional.embedding(ids, self.weight_int8).to(self.scale.dtype)
        return (rows * nn.functional.embedding(ids, self.scale[:, None])).to(self.output_dtype)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, int8"


class TiedInt8Head(nn.Module):
    """The output head of an LLM whose head is tied to its embedding (Qwen3): the same int8
    rows, read from the embedding at each call.

    It holds no tensor of its own. ``Module.to`` (idle offload to RAM and back) moves each
    module's buffers separately, so a head sharing the embedding's tensors would come back
    from RAM as a second 156 MB copy on the GPU.
    """

    def __init__(self, embedding: Int8Embedding, fused: bool | None = None):
        super().__init__()
        self.out_features, self.in_features = embedding.num_embeddings, embedding.embedding_dim
        self.fused = fused
        self._embedding = (embedding,)  # a tuple: not a submodule, so never moved twice

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        embedding = self._embedding[0]
        return int8_linear(x, embedding.weight_int8, embedding.scale, None, self.fused)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8, tied"


def module_bytes(module: nn.Module) -> dict[str, int]:
    """Bytes held by a module's tensors per device type (packed FBGEMM weights count on CPU)."""
    held: dict[str, int] = {}
    seen: set[int] = set()
    tensors: list[Any] = [*module.parameters(), *module.buffers()]
    for tensor in tensors:
        if tensor.device.type == "meta":
            continue
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key in seen:
            continue
        seen.add(key)
        held[tensor.device.type] = held.get(tensor.device.type, 0) + storage.nbytes()
    for sub in module.modules():
        if isinstance(sub, DynamicInt8Linear):
            held["cpu"] = held.get("cpu", 0) + sub.packed_bytes
    return held
