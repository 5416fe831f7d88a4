"""The experimental INT4 layers: the quantized form, the CPU kernel's agreement with it, the
CUDA packing's shapes (no GPU here), and a converted Qwen3 decoder against the float one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from nanodictate.core.asr import int4
from nanodictate.core.asr.decoder_loop import GreedyDecoder
from nanodictate.core.asr.int4 import (
    Int4Linear,
    convert_llm_to_int4,
    dequantize,
    pack_for_cpu,
    pack_for_cuda,
    quantize_groups,
    unpack_levels,
)
from nanodictate.core.asr.weights import open_checkpoint

CPU = torch.device("cpu")


def _relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got - want).norm() / want.norm())


def _weight(rows: int, columns: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(rows, columns, generator=torch.Generator().manual_seed(seed)) * 0.02


@pytest.mark.parametrize("group", int4.GROUP_SIZES)
def test_quantized_form_stands_for_the_weight(group: int) -> None:
    weight = _weight(100, 256)  # 100 rows: padded to 128
    quantized = quantize_groups(weight, group)
    levels = unpack_levels(quantized.levels)
    assert quantized.levels.shape == (128, 128) and levels.shape == (128, 256)
    assert int(levels.min()) >= 0 and int(levels.max()) <= 15
    assert quantized.scale_and_zero.shape == (256 // group, 128, 2)
    # 16 levels over each group's range: ≈8 % error at 32 inputs a group, ≈10 % at 128
    assert _relative_error(dequantize(quantized), weight) < 0.11
    assert dequantize(quantized).shape == weight.shape


def test_group_size_must_divide_the_inputs() -> None:
    with pytest.raises(ValueError, match="group size"):
        quantize_groups(_weight(8, 64), 48)
    with pytest.raises(ValueError, match="multiple"):
        quantize_groups(_weight(8, 96), 64)


def test_cpu_kernel_multiplies_by_the_quantized_weight() -> None:
    weight, bias = _weight(200, 512), torch.randn(200) * 0.1
    quantized = quantize_groups(weight, 32)
    layer = Int4Linear(quantized, bias, CPU)
    exact = dequantize(quantized)
    for x in (torch.randn(1, 512), torch.randn(5, 512), torch.randn(1, 3, 512)):
        got = layer(x)
        assert got.shape == (*x.shape[:-1], 200) and got.dtype == torch.float32
        # the kernel rounds activations to bf16 (≈0.3 %); the weights are exactly these
        assert _relative_error(got, x @ exact.t() + bias) < 0.01
        assert _relative_error(got, x @ weight.t() + bias) < 0.11


def test_packing_in_row_steps_equals_packing_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    quantized = quantize_groups(_weight(300, 128), 32)
    whole = pack_for_cpu(quantized)
    monkeypatch.setattr(int4, "ROWS_PER_STEP", 64)
    assert torch.equal(pack_for_cpu(quantized), whole)
    assert torch.equal(quantize_groups(_weight(300, 128), 32).levels, quantized.levels)


@pytest.mark.parametrize(("columns", "tiles"), [(1024, 8), (64, 4), (3072, 8)])
def test_cuda_packing_shapes(columns: int, tiles: int) -> None:
    """tinygemm's packing, shape only (its meta kernel): no CUDA on this machine."""
    quantized = quantize_groups(_weight(72, columns), 32)
    packed = pack_for_cuda(quantized, torch.device("meta"))
    assert packed.shape == (128 // 8, columns // (tiles * 16), 32, tiles // 2)
    assert packed.dtype == torch.int32


def _tiny_qwen3(seed: int) -> Any:
    """A float Qwen3 with the tiny replica's shapes and unit-scale random weights (varied
    tokens; the replica's own init is too weak to vary)."""
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(
        vocab_size=300,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        tie_word_embeddings=True,
        eos_token_id=299,
    )
    torch.manual_seed(seed)
    llm = Qwen3ForCausalLM(config).eval()
    with torch.no_grad():
        for parameter in llm.parameters():
            if parameter.ndim == 2:
                parameter.copy_(torch.randn(parameter.shape) / parameter.shape[1] ** 0.5)
    return llm


def _with_quantized_weights(llm: Any) -> Any:
    """The float model with each weight replaced by what INT4 (INT8 for the embedding)
    stands for, the head untied: the converted model must compute exactly this."""
    from nanodictate.core.asr.int8 import quantize_rows

    with torch.no_grad():
        embedding = llm.get_input_embeddings().weight
        head = torch.nn.Linear(embedding.shape[1], embedding.shape[0], bias=False)
        head.weight.copy_(dequantize(quantize_groups(embedding, 32)))
        for module in llm.model.modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.copy_(dequantize(quantize_groups(module.weight, 32)))
        rows, scale = quantize_rows(embedding)
        llm.set_input_embeddings(torch.nn.Embedding.from_pretrained(rows.float() * scale[:, None]))
        llm.lm_head = head
    return llm


def _logits(decoder: GreedyDecoder, ids: torch.Tensor) -> torch.Tensor:
    length = ids.shape[1]
    cache = decoder.new_cache(length, torch.float32, CPU)
    cos, sin = decoder.rope_table(length, torch.float32, CPU)
    return decoder.forward(decoder.embedding(ids), cache, 0, cos, sin)


def test_converted_decoder_computes_the_quantized_model() -> None:
    llm = _tiny_qwen3(1)
    convert_llm_to_int4(llm, 32)
    assert isinstance(llm.lm_head, Int4Linear)
    assert isinstance(llm.model.layers[0].self_attn.qkv_proj, Int4Linear)
    converted = GreedyDecoder(llm, torch.float32)
    float_model = GreedyDecoder(_tiny_qwen3(1), torch.float32)
    quantized_in_float = GreedyDecoder(_with_quantized_weights(_tiny_qwen3(1)), torch.float32)
    ids = torch.randint(0, 299, (1, 12), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        got = _logits(converted, ids)
        # the same weights: only the kernel's bf16 activations differ (≈0.3 % a layer)
        assert _relative_error(got, _logits(quantized_in_float, ids)) < 0.03
        # against the float weights: the quantization error itself, ≈8 % a layer, grown
        # through two unit-scale random layers and the head (measured 0.27)
        assert _relative_error(got, _logits(float_model, ids)) < 0.35
        tokens = converted.generate(converted.embedding(ids), 20, 20)
    assert len(tokens) == 20 and all(0 <= t < 300 for t in tokens)


def _replica_llm(folder: Path) -> Any:
    from transformers import AutoConfig, AutoModelForCausalLM

    llm = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder / "Qwen3-0.6B"))
    checkpoint = open_checkpoint(folder / "model.pt")
    state = {k.removeprefix("llm."): v for k, v in checkpoint.items() if k.startswith("llm.")}
    llm.load_state_dict(state, strict=False)
    llm.tie_weights()
    return llm.eval().float()


def test_deterministic_replica_says_its_sentence_in_int4(models_root: Path) -> None:
    folder = models_root / "Fun-ASR-MLT-Nano-2512"
    chain = json.loads((folder / "replica.json").read_text())["deterministic_chain_ids"]
    llm = _replica_llm(folder)
    convert_llm_to_int4(llm, 32)
    decoder = GreedyDecoder(llm, torch.float32)
    with torch.inference_mode():
        prompt = decoder.embedding(torch.tensor([[3, 5, 7]]))  # tokens outside the sentence
        assert decoder.generate(prompt, 20) == chain
