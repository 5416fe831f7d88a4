"""The LLM's compute dtype on every kind of machine, on simulated GPUs (CI has none).

fp16 is never chosen: Qwen3 degenerates to "!!!!" in fp16. Without native bf16 (T4, V100,
GTX 10/16: compute capability below 8.0) the LLM computes in fp32 and the user is told why.
"""

from __future__ import annotations

import pickle

import pytest
from tests_support import GIB, SimulatedMemory

from nanodictate.core.asr.placement import (
    GPU_WITHOUT_BF16,
    LlmCompute,
    ModelSize,
    cuda_bf16_traits,
    gpu_has_bf16,
    llm_compute_dtype,
    plan_placement,
)
from nanodictate.core.transcriber import DeviceChoice, LoadReport, Precision

REAL_SIZE = ModelSize(audio=233_700_000, llm=596_000_000)  # Fun-ASR-MLT-Nano-2512


@pytest.mark.parametrize(
    "bf16_supported, capability, native",
    [
        (False, (7, 5), False),  # T4, GTX 16, RTX 20
        (True, (7, 0), False),  # V100 where torch counts emulated bf16 as supported
        (False, (6, 1), False),  # GTX 10
        (True, (8, 0), True),  # A100
        (True, (8, 6), True),  # RTX 30
        (True, (9, 0), True),  # H100 / H200
        (True, None, False),  # no GPU
    ],
)
def test_simulated_gpus_have_native_bf16_from_sm_80(
    bf16_supported: bool, capability: tuple[int, int] | None, native: bool
) -> None:
    assert gpu_has_bf16(bf16_supported, capability) is native


def test_simulated_gpu_without_bf16_computes_in_fp32() -> None:
    t4 = gpu_has_bf16(False, (7, 5))
    assert llm_compute_dtype(Precision.INT8, "cuda", t4) == LlmCompute("fp32", GPU_WITHOUT_BF16)
    assert llm_compute_dtype(Precision.BF16, "cuda", t4) == LlmCompute("fp32", GPU_WITHOUT_BF16)
    assert llm_compute_dtype(Precision.FP32, "cuda", t4) == LlmCompute("fp32")


def test_simulated_gpu_with_bf16_computes_in_bf16() -> None:
    rtx_3060 = gpu_has_bf16(True, (8, 6))
    assert llm_compute_dtype(Precision.INT8, "cuda", rtx_3060) == LlmCompute("bf16")
    assert llm_compute_dtype(Precision.BF16, "cuda", rtx_3060) == LlmCompute("bf16")
    assert llm_compute_dtype(Precision.FP32, "cuda", rtx_3060) == LlmCompute("fp32")


def test_cpu_computes_in_fp32_except_for_bf16_weights() -> None:
    for gpu_bf16 in (True, False):  # whatever GPU the machine also has
        assert llm_compute_dtype(Precision.INT8, "cpu", gpu_bf16) == LlmCompute("fp32")
        assert llm_compute_dtype(Precision.FP32, "cpu", gpu_bf16) == LlmCompute("fp32")
        assert llm_compute_dtype(Precision.BF16, "cpu", gpu_bf16) == LlmCompute("bf16")


def test_this_machine_reports_no_gpu_bf16() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert cuda_bf16_traits() == (False, None)


def test_simulated_gpu_without_bf16_places_int8_with_fp32_compute() -> None:
    placement = plan_placement(
        Precision.INT8,
        DeviceChoice.AUTO,
        REAL_SIZE,
        SimulatedMemory(16 * GIB, 4 * GIB),
        gpu_bf16=False,
    )
    assert (placement.precision, placement.device, placement.fallback_reason) == (
        Precision.INT8,
        "cuda",
        None,
    )
    assert (placement.compute_dtype, placement.compute_note) == ("fp32", GPU_WITHOUT_BF16)


def test_simulated_gpu_without_bf16_loads_bf16_as_fp32() -> None:
    # funasr casts the LLM to its compute dtype at every generate: bf16 weights computing in
    # fp32 would silently become fp32 weights anyway, so the memory plan counts them so.
    placement = plan_placement(
        Precision.BF16,
        DeviceChoice.AUTO,
        REAL_SIZE,
        SimulatedMemory(16 * GIB, 8 * GIB),
        gpu_bf16=False,
    )
    assert (placement.precision, placement.device, placement.fallback_reason) == (
        Precision.FP32,
        "cuda",
        None,
    )
    assert (placement.compute_dtype, placement.compute_note) == ("fp32", GPU_WITHOUT_BF16)
    # 2 GiB free: FP32 (3.1 GiB and headroom) does not fit where BF16 would have; INT8 does
    tight = plan_placement(
        Precision.BF16,
        DeviceChoice.AUTO,
        REAL_SIZE,
        SimulatedMemory(16 * GIB, 2 * GIB),
        gpu_bf16=False,
    )
    assert (tight.precision, tight.device, tight.compute_dtype) == (Precision.INT8, "cuda", "fp32")
    assert "FP32 on the GPU needs" in (tight.fallback_reason or "")


def test_simulated_ampere_keeps_bf16_and_cpu_fallback_computes_in_fp32() -> None:
    bf16 = plan_placement(
        Precision.BF16, DeviceChoice.AUTO, REAL_SIZE, SimulatedMemory(16 * GIB, 8 * GIB)
    )
    assert (bf16.precision, bf16.device, bf16.compute_dtype, bf16.compute_note) == (
        Precision.BF16,
        "cuda",
        "bf16",
        None,
    )
    to_cpu = plan_placement(
        Precision.BF16,
        DeviceChoice.AUTO,
        REAL_SIZE,
        SimulatedMemory(16 * GIB, GIB // 2),
        gpu_bf16=False,
    )
    assert (to_cpu.precision, to_cpu.device, to_cpu.compute_dtype) == (
        Precision.INT8,
        "cpu",
        "fp32",
    )
    assert to_cpu.compute_note is None


def test_load_report_carries_the_compute_dtype_across_processes() -> None:
    # EngineProcess pickles the LoadReport from its child to the app
    report = LoadReport(Precision.INT8, "cuda", 2.0, False, None, "fp32", GPU_WITHOUT_BF16)
    assert pickle.loads(pickle.dumps(report)) == report
    older = LoadReport(Precision.INT8, "cpu", 1.0, True, None)  # callers that predate it
    assert (older.compute_dtype, older.compute_note) == ("fp32", None)
