"""INT8 building blocks against their float originals (the CUDA layer runs here on the CPU)."""

import pytest
import torch

from nanodictate.core.asr.int8 import (
    DynamicInt8Linear,
    Int8Embedding,
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
