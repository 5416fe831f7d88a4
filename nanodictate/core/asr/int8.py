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

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

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


def _prepack(weight_int8: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None) -> Any:
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


class DynamicInt8Linear(nn.Module):
    """CPU linear layer: FBGEMM int8 weights, activations quantized per call.

    Matrices taller than ``ROWS_PER_PACK`` (the 151,936-row output head) are packed in row
    blocks: packing copies its input twice, and block by block those copies stay small.
    The activations are quantized the same way for every block, so the result is the same.
    """

    ROWS_PER_PACK = 65536

    def __init__(
        self,
        weight_int8: torch.Tensor,
        scale: torch.Tensor,
        bias: torch.Tensor | None,
        after_pack: Callable[[torch.Tensor], None] | None = None,
    ):
        """``after_pack(block)`` is told when a block of the source is no longer needed."""
        super().__init__()
        self.out_features, self.in_features = weight_int8.shape
        self._packs: list[Any] = []
        for start in range(0, self.out_features, self.ROWS_PER_PACK):
            rows = slice(start, start + self.ROWS_PER_PACK)
            block = weight_int8[rows]
            self._packs.append(_prepack(block, scale[rows], None if bias is None else bias[rows]))
            if after_pack is not None:
                after_pack(block)
        self.packed_bytes = weight_int8.numel() + (0 if bias is None else 4 * bias.numel())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        # reduce_range avoids int16 overflow in FBGEMM's AVX2 kernels, as torch's own
        # dynamic quantization does on x86.
        outputs = [torch.ops.quantized.linear_dynamic(x, pack, True) for pack in self._packs]
        y: torch.Tensor = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=-1)
        return y if dtype == torch.float32 else y.to(dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


class WeightOnlyInt8Linear(nn.Module):
    """GPU linear layer: int8 weights in memory, matmul in the activation dtype."""

    weight_int8: torch.Tensor
    scale: torch.Tensor
    bias: torch.Tensor | None

    def __init__(self, weight_int8: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.out_features, self.in_features = weight_int8.shape
        self.register_buffer("weight_int8", weight_int8)
        self.register_buffer("scale", scale.float())
        self.register_buffer("bias", None if bias is None else bias.detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Dequantize one matrix at a time: the transient copy is one layer, never the model.
        weight = self.weight_int8.to(x.dtype) * self.scale.to(x.dtype)[:, None]
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return nn.functional.linear(x, weight, bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


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
