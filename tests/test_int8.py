"""INT8 building blocks against their float originals (the CUDA layer runs here on the CPU)."""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from nanodictate.core.asr import int8
from nanodictate.core.asr.int8 import (
    DynamicInt8Linear,
    Int8Embedding,
    TiedInt8Head,
    WeightOnlyInt8Linear,
    module_bytes,
    quantize_rows,
)


def _relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float((actual.float() - expected.float()).norm() / expected.float().norm())


@pytest.fixture
def weights() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(300, 64, generator=generator), torch.randn(300, generator=generator)


def test_quantize_rows_is_symmetric_per_row_and_blockwise_exact(weights: tuple) -> None:
    weight, _ = weights
    quantized, scale = quantize_rows(weight, rows_per_step=7)
    assert quantized.dtype == torch.int8 and scale.shape == (300,)
    assert int(quantized.abs().max()) == 127
    assert torch.equal(quantized, quantize_rows(weight)[0])
    assert _relative_error(quantized.float() * scale[:, None], weight) < 0.01


def test_quantize_rows_leaves_its_source_untouched(weights: tuple) -> None:
    weight, _ = weights
    before = weight.clone()
    quantize_rows(weight)
    assert torch.equal(weight, before)


def test_dynamic_int8_linear_matches_float_and_packs_tall_matrices_in_blocks(
    weights: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    weight, bias = weights
    x = torch.randn(2, 5, 64)
    expected = torch.nn.functional.linear(x, weight, bias)
    monkeypatch.setattr(DynamicInt8Linear, "ROWS_PER_PACK", 128)
    released: list[int] = []
    layer = DynamicInt8Linear(
        *quantize_rows(weight), bias, after_pack=lambda b: released.append(len(b))
    )
    assert released == [128, 128, 44]
    assert layer(x).shape == (2, 5, 300)
    assert _relative_error(layer(x), expected) < 0.03
    assert layer(x.to(torch.bfloat16)).dtype == torch.bfloat16


def test_weight_only_int8_linear_matches_float(weights: tuple) -> None:
    weight, bias = weights
    layer = WeightOnlyInt8Linear(*quantize_rows(weight), bias)
    x = torch.randn(3, 64)
    assert _relative_error(layer(x), torch.nn.functional.linear(x, weight, bias)) < 0.01
    assert layer(x.to(torch.bfloat16)).dtype == torch.bfloat16
    assert module_bytes(layer)["cpu"] == 300 * 64 + 300 * 4 + 300 * 4


def test_int8_embedding_dequantizes_only_the_rows_looked_up(weights: tuple) -> None:
    weight, _ = weights
    embedding = Int8Embedding(*quantize_rows(weight), torch.float32)
    ids = torch.tensor([[0, 5, 299]])
    assert _relative_error(embedding(ids), weight[ids]) < 0.01
    assert Int8Embedding(*quantize_rows(weight), torch.bfloat16)(ids).dtype == torch.bfloat16


# ------------------------------------------------------------------ WeightOnlyInt8Linear (CUDA)


@pytest.mark.parametrize("fused", [True, False, None], ids=["fused", "blocks", "auto"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_weight_only_int8_linear_paths_match_float(
    weights: tuple, fused: bool | None, dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    weight, bias = weights
    monkeypatch.setattr(WeightOnlyInt8Linear, "BLOCK_BYTES", 7 * 64 * 4)  # 7-row blocks in fp32
    layer = WeightOnlyInt8Linear(*quantize_rows(weight), bias, fused=fused)
    for shape in [(1, 1, 64), (2, 5, 64), (40, 64)]:  # a decode step, a prefill, many rows
        x = torch.randn(*shape)
        y = layer(x.to(dtype))
        assert y.dtype == dtype and y.shape == (*shape[:-1], 300)
        expected = torch.nn.functional.linear(x, weight, bias)
        assert _relative_error(y, expected) < (0.01 if dtype == torch.float32 else 0.02)


def test_weight_only_int8_linear_survives_funasr_casting_the_llm(weights: tuple) -> None:
    # funasr's generate calls llm.to(llm_dtype): float buffers change dtype, int8 stays int8
    weight, _ = weights
    layer = WeightOnlyInt8Linear(*quantize_rows(weight), None).to(torch.bfloat16)
    assert layer.weight_int8.dtype == torch.int8 and layer.scale.dtype == torch.bfloat16
    x = torch.randn(2, 64)
    expected = torch.nn.functional.linear(x, weight)
    for fused in (True, False):
        layer.fused = fused
        assert _relative_error(layer(x.to(torch.bfloat16)), expected) < 0.02


def test_without_a_fused_kernel_the_layer_multiplies_in_blocks(
    weights: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on a torch before 2.9, which has no CUDA kernel for the fused op."""

    def no_kernel(*_args: object) -> torch.Tensor:
        raise NotImplementedError("Could not run 'aten::_weight_int8pack_mm' with arguments")

    monkeypatch.setattr(int8, "_fused_checked", {})
    monkeypatch.setattr(torch, "_weight_int8pack_mm", no_kernel)
    assert not int8.fused_int8_matmul_works(torch.device("cpu"), torch.bfloat16)
    weight, bias = weights
    layer = WeightOnlyInt8Linear(*quantize_rows(weight), bias)
    x = torch.randn(1, 64)
    assert _relative_error(layer(x), torch.nn.functional.linear(x, weight, bias)) < 0.01


def test_the_fused_kernel_is_probed_once_per_device_and_dtype(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(int8, "_fused_checked", {})
    calls: list[torch.dtype] = []
    real = torch._weight_int8pack_mm

    def counting(x: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        calls.append(x.dtype)
        return real(x, *args)

    monkeypatch.setattr(torch, "_weight_int8pack_mm", counting)
    for _ in range(3):
        assert int8.fused_int8_matmul_works(torch.device("cpu"), torch.float32)
    assert calls == [torch.float32]


class _NewTensors(TorchDispatchMode):
    """Records the size of every tensor an operation allocates (views of it are not new)."""

    def __init__(self, existing: list[torch.Tensor]) -> None:
        super().__init__()
        self.seen = {t.untyped_storage().data_ptr() for t in existing}
        self.sizes: list[tuple[int, str]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        result = func(*args, **(kwargs or {}))
        for tensor in tree_leaves(result):
            if isinstance(tensor, torch.Tensor):
                storage = tensor.untyped_storage()
                if storage.data_ptr() not in self.seen:
                    self.seen.add(storage.data_ptr())
                    self.sizes.append((storage.nbytes(), str(func)))
        return result


@pytest.fixture(scope="module")
def full_head() -> tuple[torch.Tensor, torch.Tensor]:
    """The real output head's shape (151,936 × 1024, tied to the embedding): 155 MB of int8."""
    return torch.full((151_936, 1024), 3, dtype=torch.int8), torch.full((151_936,), 1e-3)


@pytest.mark.parametrize("fused", [True, False, None], ids=["fused", "blocks", "auto"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_a_decode_step_through_the_full_head_makes_no_big_temporary(
    full_head: tuple[torch.Tensor, torch.Tensor], fused: bool | None, dtype: torch.dtype
) -> None:
    # Dequantizing the whole head made two 297 MB temporaries per token in bf16, 594 MB in fp32.
    layer = WeightOnlyInt8Linear(*full_head, None, fused=fused)
    x = torch.randn(1, 1, 1024, dtype=dtype)
    layer(x)  # the one-time probe of the fused kernel is not part of a step
    with _NewTensors([x, *layer.buffers()]) as recorded:
        y = layer(x)
    assert y.shape == (1, 1, 151_936) and y.dtype == dtype
    assert float(y[0, 0, 0]) == pytest.approx(float(x.float().sum()) * 3e-3, rel=0.02, abs=1e-3)
    output = y.untyped_storage().nbytes()
    temporaries = [(size, op) for size, op in recorded.sizes if size != output]
    assert max(temporaries, default=(0, ""))[0] <= 20 << 20, sorted(temporaries)[-3:]


def test_the_tied_head_reads_the_embeddings_rows_and_holds_none_of_its_own() -> None:
    """On the GPU the head and the embedding share one int8 matrix. Held by two modules, the
    matrix would come back as two copies after an idle offload (Module.to moves each module's
    buffers separately); the head reads the embedding's instead."""
    weight_int8, scale = quantize_rows(torch.randn(300, 64))
    embedding = Int8Embedding(weight_int8, scale, torch.float32)
    head = TiedInt8Head(embedding)
    both = torch.nn.ModuleDict({"embedding": embedding, "head": head})
    assert list(head.buffers()) == [] and list(head.parameters()) == []
    x = torch.randn(2, 5, 64)
    expected = WeightOnlyInt8Linear(weight_int8, scale, None)(x)
    assert torch.allclose(head(x), expected)
    assert module_bytes(both)["cpu"] == weight_int8.numel() + 4 * scale.numel()
    both.to(torch.device("meta"))  # any move: the head follows the embedding's one copy
    assert head(x.to("meta")).device.type == "meta"
