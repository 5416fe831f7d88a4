"""INT4 building blocks (experimental): group-wise asymmetric 4-bit weights for the LLM.

Each matrix is cut into groups of ``group_size`` consecutive inputs per output row; a group
keeps a bf16 scale and zero point, and each weight one of 16 levels::

    weight ≈ (q - 8) * scale + zero,   q in 0..15

which is the form torch's own 4-bit matmuls read (``_weight_int4pack_mm_for_cpu`` on the
CPU, tinygemm's ``_weight_int4pack_mm`` on CUDA). Both multiply in bf16: the activations
are rounded to bf16 on the way in, and the scale and zero must be bf16 too.

What the measurements said (``bench/int4.py``: full-size replica, AMD EPYC with AVX2 only,
2 threads, torch 2.13): torch's CPU kernel is vectorized on AVX2 for bf16 only and is
slower per weight than FBGEMM's INT8 — one decoder layer 1.32 ms against 0.65, a decoded
token 61.7 ms against 38.3, a 128-position prefill 1.53 s against 0.46 — while the model's
tensors shrink from 752 to 529 MB. On random weights INT4's logits are off by 37 % (INT8's
by 8 %) and its greedy choice is fp32's in 4 % of the steps (INT8: 94 %; in fp32's top 5:
78 % and 99.7 %).

So the app does not offer INT4: on a CPU like this one it is slower than INT8 and less
accurate, and on a GPU (tinygemm, bf16, sm80+; half of INT8's weight memory) it has never
run — no GPU was lent while it was built — and its accuracy on the real weights is unknown
(only random-weight replicas exist here). This module is the kernel layer to measure on a GPU
(`bench/int4.py`'s functions take the device) before INT4 becomes an experimental,
off-by-default precision; the CUDA part is kept minimal and only its packing's shapes are
tested.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from nanodictate.core.asr.decoder_loop import fuse_projections
from nanodictate.core.asr.int8 import Int8Embedding, quantize_rows

GROUP_SIZES = (32, 64, 128)
# 32: the smallest error of the three (a layer's output off by 7.7 % against 8.9 % at 64
# and 10.1 % at 128, Gaussian weights) at about the same speed (1.32, 1.30, 1.28 ms a
# decoder layer on the CPU, bench/int4.py); its bf16 scale and zero cost a bit a weight.
DEFAULT_GROUP_SIZE = 32
# The CPU kernel works on blocks of 32 (AVX2) or 64 (AVX512) output rows and tinygemm on
# multiples of 8: rows are padded to 64 and the padding sliced off the output.
ROW_MULTIPLE = 64
LEVELS = 15  # q in 0..LEVELS
MIDPOINT = 8  # the level a zero point stands for
# Quantize and pack this many rows at a time: the 151,936-row head's int32 temporaries
# would otherwise add ≈0.6 GB to the conversion's peak. A multiple of ROW_MULTIPLE, so
# the CPU's packed blocks come out exactly as a packing of the whole matrix.
ROWS_PER_STEP = 8192


@dataclass(frozen=True)
class Int4Weight:
    """A matrix in the plain INT4 form, independent of the kernel that will read it.

    ``levels``: uint8 [padded rows, in_features / 2], two weights per byte, the even
    column in the high nibble (tinygemm's input order). ``scale_and_zero``: bf16
    [in_features / group_size, padded rows, 2].
    """

    levels: torch.Tensor
    scale_and_zero: torch.Tensor
    out_features: int
    in_features: int
    group_size: int

    @property
    def nbytes(self) -> int:
        return int(
            self.levels.numel() + self.scale_and_zero.numel() * self.scale_and_zero.element_size()
        )


def _padded_rows(rows: int) -> int:
    return -(-rows // ROW_MULTIPLE) * ROW_MULTIPLE


def _quantize_block(block: torch.Tensor, group_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """int32 levels [rows, in] and bf16 (scale, zero) [rows, in / group_size, 2]."""
    rows, columns = block.shape
    groups = block.reshape(rows, columns // group_size, group_size)
    low = groups.amin(dim=-1, keepdim=True)
    high = groups.amax(dim=-1, keepdim=True)
    scale = ((high - low) / LEVELS).clamp(min=1e-6)
    # The zero point is rounded to bf16 before the levels are chosen, so the levels absorb
    # its rounding; the scale's rounding is small beside one level (≤ 0.4 % of a step).
    scale_bf16 = scale.to(torch.bfloat16)
    zero_bf16 = (low + MIDPOINT * scale).to(torch.bfloat16)
    low_used = zero_bf16.float() - MIDPOINT * scale_bf16.float()
    levels = ((groups - low_used) / scale_bf16.float()).round_().clamp_(0, LEVELS)
    parameters = torch.cat([scale_bf16, zero_bf16], dim=-1)
    return levels.reshape(rows, columns).to(torch.int32), parameters


def quantize_groups(weight: torch.Tensor, group_size: int = DEFAULT_GROUP_SIZE) -> Int4Weight:
    """Group-wise asymmetric INT4 of a float [out, in] matrix (rows padded with zeros)."""
    if group_size not in GROUP_SIZES:
        raise ValueError(f"group size must be one of {GROUP_SIZES}, not {group_size}")
    rows, columns = weight.shape
    if columns % group_size:
        raise ValueError(f"{columns} inputs are not a multiple of the group size {group_size}")
    padded = _padded_rows(rows)
    levels = torch.empty(padded, columns // 2, dtype=torch.uint8)
    parameters = torch.empty(padded, columns // group_size, 2, dtype=torch.bfloat16)
    for start in range(0, padded, ROWS_PER_STEP):
        end = min(start + ROWS_PER_STEP, padded)
        block = torch.zeros(end - start, columns, dtype=torch.float32)
        real = weight[start : min(end, rows)]
        block[: real.shape[0]] = real.detach().to(torch.float32)
        block_levels, block_parameters = _quantize_block(block, group_size)
        levels[start:end] = (block_levels[:, 0::2] << 4 | block_levels[:, 1::2]).to(torch.uint8)
        parameters[start:end] = block_parameters
    return Int4Weight(levels, parameters.transpose(0, 1).contiguous(), rows, columns, group_size)


def unpack_levels(levels: torch.Tensor) -> torch.Tensor:
    """int32 [rows, in] levels 0..15 of the plain form's bytes."""
    wide = levels.to(torch.int32)
    return torch.stack([wide >> 4, wide & 0xF], dim=-1).reshape(levels.shape[0], -1)


def dequantize(weight: Int4Weight) -> torch.Tensor:
    """The float32 [out, in] matrix the INT4 form stands for (tests and accuracy checks)."""
    levels = unpack_levels(weight.levels).float()
    groups = weight.in_features // weight.group_size
    parameters = weight.scale_and_zero.float().transpose(0, 1)  # [rows, groups, 2]
    scale, zero = parameters[..., 0:1], parameters[..., 1:2]
    shaped = levels.reshape(levels.shape[0], groups, weight.group_size)
    return ((shaped - MIDPOINT) * scale + zero).reshape(levels.shape)[: weight.out_features]


def pack_for_cpu(weight: Int4Weight) -> torch.Tensor:
    """uint8 [padded rows, in / 2] in the layout of this CPU's kernel (AVX2 and AVX512
    differ: pack on the machine that multiplies)."""
    packed = [
        torch.ops.aten._convert_weight_to_int4pack_for_cpu(
            unpack_levels(weight.levels[start : start + ROWS_PER_STEP]), 1
        )
        for start in range(0, weight.levels.shape[0], ROWS_PER_STEP)
    ]
    return packed[0] if len(packed) == 1 else torch.cat(packed)


def cuda_inner_k_tiles(in_features: int) -> int:
    """tinygemm's inner K tiles: 8, 4 or 2, the largest that divides the input width."""
    for tiles in (8, 4, 2):
        if in_features % (tiles * 16) == 0:
            return tiles
    raise ValueError(f"tinygemm needs inputs in multiples of 32, not {in_features}")


def pack_for_cuda(weight: Int4Weight, device: torch.device) -> torch.Tensor:
    """int32 [rows / 8, in / (tiles * 16), 32, tiles / 2] for tinygemm (bf16, sm80+).

    Not run on this project's CPU machines; its shapes are checked on the meta device.
    """
    tiles = cuda_inner_k_tiles(weight.in_features)
    packed: torch.Tensor = torch.ops.aten._convert_weight_to_int4pack(
        weight.levels.to(device), tiles
    )
    return packed


class Int4Linear(nn.Module):
    """A linear layer over INT4 weights packed for one device (CPU or CUDA).

    The packed layout belongs to the device it was made for, so the layer is built where it
    will run and is not moved with ``Module.to`` to another device type. The scale and zero
    point are held as an int16 view of their bf16 bits: ``Module.to(dtype)`` (which
    `GreedyDecoder` applies to the whole LLM) casts float buffers, and the kernels need bf16.
    """

    packed: torch.Tensor
    scale_and_zero_bits: torch.Tensor
    bias: torch.Tensor | None

    def __init__(self, weight: Int4Weight, bias: torch.Tensor | None, device: torch.device) -> None:
        super().__init__()
        self.out_features, self.in_features = weight.out_features, weight.in_features
        self.group_size = weight.group_size
        self.on_cuda = device.type == "cuda"
        packed = pack_for_cuda(weight, device) if self.on_cuda else pack_for_cpu(weight)
        bits = weight.scale_and_zero.to(device).view(torch.int16)
        self.register_buffer("packed", packed)
        self.register_buffer("scale_and_zero_bits", bits)
        self.register_buffer("bias", None if bias is None else bias.detach().to(device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).to(torch.bfloat16).contiguous()
        parameters = self.scale_and_zero_bits.view(torch.bfloat16)
        y: torch.Tensor
        if self.on_cuda:
            y = torch.ops.aten._weight_int4pack_mm(rows, self.packed, self.group_size, parameters)
        else:
            y = torch.ops.aten._weight_int4pack_mm_for_cpu(
                rows, self.packed, self.group_size, parameters
            )
        out = y[:, : self.out_features].to(x.dtype)
        if self.bias is not None:
            out = out + self.bias.to(x.dtype)
        return out.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"int4, group_size={self.group_size}"
        )


def _linear_to_int4(linear: nn.Module, group_size: int, device: torch.device) -> Int4Linear:
    weight = getattr(linear, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.ndim != 2:
        raise TypeError(f"cannot convert {type(linear).__name__} to INT4: no float weight")
    bias = getattr(linear, "bias", None)
    return Int4Linear(quantize_groups(weight, group_size), bias, device)


def convert_llm_to_int4(
    llm: Any,
    group_size: int = DEFAULT_GROUP_SIZE,
    device: torch.device | None = None,
    activation_dtype: torch.dtype = torch.float32,
) -> None:
    """Turn a loaded float Qwen3 LLM's linear layers into `Int4Linear`, in place.

    The q/k/v and gate/up projections are fused first (`decoder_loop.fuse_projections`),
    so the model afterwards runs only through `GreedyDecoder`. The output head is INT4;
    the embedding it is tied to becomes INT8 (`int8.Int8Embedding`): a lookup reads a few
    rows, so its 156 MB (half of it in INT4) could be left mapped from the cache instead.
    """
    target = torch.device("cpu") if device is None else device
    fuse_projections(llm)
    for layer in llm.model.layers:
        attention, mlp = layer.self_attn, layer.mlp
        attention.qkv_proj = _linear_to_int4(attention.qkv_proj, group_size, target)
        attention.o_proj = _linear_to_int4(attention.o_proj, group_size, target)
        mlp.gate_up_proj = _linear_to_int4(mlp.gate_up_proj, group_size, target)
        mlp.down_proj = _linear_to_int4(mlp.down_proj, group_size, target)
        for norm in (
            layer.input_layernorm,
            layer.post_attention_layernorm,
            attention.q_norm,
            attention.k_norm,
        ):
            norm.to(target)
    embedding = llm.get_input_embeddings()
    llm.lm_head = _linear_to_int4(llm.lm_head, group_size, target)
    weight_int8, scale = quantize_rows(embedding.weight)
    llm.set_input_embeddings(
        Int8Embedding(weight_int8.to(target), scale.to(target), activation_dtype)
    )
    llm.model.norm.to(target)
    llm.model.rotary_emb.to(target)
