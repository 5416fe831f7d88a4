"""Where the model goes and in which dtypes: precision, device and the LLM's compute dtype.

Pure decisions over what the machine reports, so tests can simulate any machine: free RAM and
GPU memory come from a `MemoryProbe`, the GPU's bf16 support from `cuda_bf16_traits`. Nothing
here imports torch until a probe is asked.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Protocol

from nanodictate.core.asr import memory
from nanodictate.core.errors import OutOfMemoryError
from nanodictate.core.transcriber import DeviceChoice, Precision

log = logging.getLogger(__name__)

_CPU_HEADROOM = 600 << 20  # activations, tokenizer, frontend, allocator slack
# Activations, KV cache, cuBLAS workspace. Measured need is far below: the KV cache is
# 0.11 MB per token in bf16 (28 layers × K,V × 8 heads × 128), 0.23 MB in fp32, so ≈60/120 MB
# at 500 tokens; an INT8 layer's temporaries are at most 16 MB (WeightOnlyInt8Linear).
_CUDA_HEADROOM = 700 << 20

GPU_WITHOUT_BF16 = "this GPU has no bf16"


class MemoryProbe(Protocol):
    def available_ram(self) -> int: ...
    def cuda_free(self) -> int | None: ...


class SystemMemoryProbe:
    """What the machine really has free."""

    def available_ram(self) -> int:
        return memory.available_ram()

    def cuda_free(self) -> int | None:
        import torch

        if not torch.cuda.is_available():
            return None
        free, _total = torch.cuda.mem_get_info()
        return int(free)


def cuda_bf16_traits() -> tuple[bool, tuple[int, int] | None]:
    """The GPU's native bf16 support and compute capability; ``(False, None)`` without CUDA.

    ``torch.cuda.is_bf16_supported()`` alone says True on a T4 (it counts emulation).
    """
    import torch

    if not torch.cuda.is_available():
        return False, None
    major, minor = torch.cuda.get_device_capability()
    return bool(torch.cuda.is_bf16_supported(including_emulation=False)), (major, minor)


def gpu_has_bf16(bf16_supported: bool, capability: tuple[int, int] | None) -> bool:
    """Native bf16 arithmetic: Ampere (sm_80) and later. Not T4, V100 or GTX 10/16."""
    return bf16_supported and capability is not None and capability >= (8, 0)


@dataclass(frozen=True)
class LlmCompute:
    dtype: str  # funasr's ``llm_dtype``: "bf16" or "fp32"
    note: str | None = None  # why fp32 where bf16 was wanted, for the user


def llm_compute_dtype(precision: Precision, device: str, gpu_bf16: bool) -> LlmCompute:
    """The LLM's activation dtype. fp16 is never one: Qwen3 degenerates to "!!!!" in fp16.

    On the CPU: fp32, or bf16 for BF16 weights (FBGEMM's INT8 takes fp32 activations).
    On a GPU: bf16 for INT8 and BF16 where bf16 is native, else fp32 — INT8 weights stay int8
    and are multiplied in fp32; BF16 weights would be cast to fp32 by funasr at every
    generate, so `plan_placement` loads FP32 instead.
    """
    if device != "cuda":
        return LlmCompute("bf16" if precision is Precision.BF16 else "fp32")
    if precision is Precision.FP32:
        return LlmCompute("fp32")
    if gpu_bf16:
        return LlmCompute("bf16")
    return LlmCompute("fp32", GPU_WITHOUT_BF16)


@dataclass(frozen=True)
class ModelSize:
    """Parameter counts, read from the checkpoint's tensor shapes."""

    audio: int  # encoder and adaptor: always fp32 (funasr runs them in fp32)
    llm: int

    def weight_bytes(self, precision: Precision) -> int:
        if precision is Precision.FP32:
            return 4 * (self.audio + self.llm)
        if precision is Precision.BF16:
            return 4 * self.audio + 2 * self.llm
        # One byte per weight, plus per-row scales, norms and biases kept in float (≈5 MB
        # for the real model, fp32 or bf16 alike).
        return int(1.05 * (self.audio + self.llm))


@dataclass(frozen=True)
class Placement:
    precision: Precision
    device: str  # "cuda" or "cpu"
    fallback_reason: str | None = None
    compute_dtype: str = "fp32"  # the LLM's activations (`llm_compute_dtype`)
    compute_note: str | None = None


def _on_device(precision: Precision, device: str, gpu_bf16: bool) -> Precision:
    """What ``precision`` becomes on ``device``: BF16 is FP32 on a GPU without bf16."""
    if precision is Precision.BF16 and device == "cuda" and not gpu_bf16:
        return Precision.FP32
    return precision


def plan_placement(
    precision: Precision,
    device: DeviceChoice,
    size: ModelSize,
    probe: MemoryProbe,
    *,
    gpu_bf16: bool = True,
) -> Placement:
    """Pick the requested precision and device if they fit, else the leanest that does."""
    cuda_free = probe.cuda_free()
    reasons: list[str] = []
    if device is DeviceChoice.CUDA and cuda_free is None:
        reasons.append("no CUDA GPU is available")
    devices = (
        ["cuda", "cpu"] if cuda_free is not None and device is not DeviceChoice.CPU else ["cpu"]
    )
    candidates = [(precision, devices[0])]
    if precision is not Precision.INT8:
        candidates.append((Precision.INT8, devices[0]))
    if devices[0] == "cuda":
        candidates.append((Precision.INT8, "cpu"))

    for asked, candidate_device in candidates:
        candidate_precision = _on_device(asked, candidate_device, gpu_bf16)
        need = size.weight_bytes(candidate_precision)
        if candidate_device == "cuda":
            free = cuda_free or 0
            need += _CUDA_HEADROOM
        else:
            free = probe.available_ram()
            need += _CPU_HEADROOM
        if need <= free:
            compute = llm_compute_dtype(asked, candidate_device, gpu_bf16)
            reason = None
            if (asked, candidate_device) != (precision, devices[0]) or reasons:
                reason = "; ".join(reasons) or "not enough free memory"
            return Placement(
                candidate_precision, candidate_device, reason, compute.dtype, compute.note
            )
        where = "GPU" if candidate_device == "cuda" else "RAM"
        reasons.append(
            f"{candidate_precision.value.upper()} on the {where} needs {need / 2**30:.1f} GiB, "
            f"{free / 2**30:.1f} GiB free"
        )
    raise OutOfMemoryError(
        "Not enough free memory to load the speech model: "
        + "; ".join(reasons)
        + ". Close other programs and try again."
    )


def gpu_has_native_bf16() -> bool:
    """`gpu_has_bf16` for this machine's GPU (False without one), logged when it lacks it."""
    bf16_supported, capability = cuda_bf16_traits()
    native = gpu_has_bf16(bf16_supported, capability)
    if capability is not None and not native:
        log.info("GPU sm_%d%d has no native bf16: the LLM computes in fp32", *capability)
    return native


def placement_after_gpu_oom(
    failed: Placement, device: DeviceChoice, size: ModelSize, probe: MemoryProbe, gpu_bf16: bool
) -> Placement:
    """Another program took the GPU's memory while we loaded (the plan saw it free): INT8 on
    the GPU if that was not what failed and it still fits, else INT8 on the CPU."""
    reason = f"the GPU ran out of memory while loading {failed.precision.value.upper()}"
    if failed.precision is not Precision.INT8:
        try:
            smaller = plan_placement(Precision.INT8, device, size, probe, gpu_bf16=gpu_bf16)
        except OutOfMemoryError:
            smaller = None
        if smaller is not None and smaller.device == "cuda":
            return dataclasses.replace(smaller, fallback_reason=reason)
    return Placement(Precision.INT8, "cpu", reason)
