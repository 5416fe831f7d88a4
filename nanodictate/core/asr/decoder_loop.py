"""Greedy decoding of the Qwen3 decoder without transformers' ``generate()``.

transformers' ``generate()`` spends ≈14 ms of each token on this CPU around ≈200 small matrix
calls: logits processors, stopping criteria, a growing ``DynamicCache``, mask building, model
outputs. This loop does only the arithmetic of Qwen3's forward, in the same order and with
the same operations, so it chooses exactly the tokens ``generate()`` chooses:

* q/k/v and gate/up are one matrix each (`fuse_projections`; for INT8 the cache loader packs
  them fused, ``weights.load_int8_weights``): one quantization of the activations and one
  kernel call instead of three or two;
* the KV cache is allocated once per decode, as long as the prompt plus the token cap;
* RMSNorm and RoPE are written out as transformers writes them (fp32 norm, the module's own
  ``inv_freq``, which funasr casts with the LLM);
* the output head sees the last position only;
* the prompt's rotary positions start where funasr's call puts them (``first_position``).
  funasr passes ``generate()`` an attention mask as long as the whole chat, the assistant's
  placeholder answer ("null<|im_end|>") included, and transformers numbers positions by the
  mask (``cumsum - 1``, the last T kept): the prompt sits at positions n..n+T-1, n being
  the answer's token count (4 on the replica), not 0..T-1. In exact arithmetic RoPE sees
  only distances, but cos/sin at other angles round differently (the first attention output
  differs by ≈1 ulp), and INT8's per-call activation scale turns those ulps into other
  tokens (full-size replica: another token at the 5th step).

What ``generate()`` did that still matters is kept: the token cap, stopping at the model's
end tokens (the end token is part of the output, as there), and ``min_new_tokens``, which
masks the end tokens until that many tokens were made (the benchmark's pinned length), and
a streamer that sees each new token as it is chosen (what the benchmark times tokens with).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn import functional

# Projections that read the same input: (module, fused name, the Qwen3 names in row order).
FUSED_PROJECTIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("self_attn", "qkv_proj", ("q_proj", "k_proj", "v_proj")),
    ("mlp", "gate_up_proj", ("gate_proj", "up_proj")),
)


def fusion_groups(llm: Any) -> dict[str, tuple[str, tuple[str, ...]]]:
    """For each decoder layer's attention and MLP (names relative to ``llm``): the fused
    projection's name and the projections it replaces."""
    groups: dict[str, tuple[str, tuple[str, ...]]] = {}
    for index in range(len(llm.model.layers)):
        for part, fused, names in FUSED_PROJECTIONS:
            groups[f"model.layers.{index}.{part}"] = (fused, names)
    return groups


class _FusedFloatLinear(nn.Module):
    """Float q/k/v or gate/up rows in one matrix (no copy beside it: the parts are freed)."""

    def __init__(self, parts: Sequence[nn.Linear]):
        super().__init__()
        self.weight = nn.Parameter(torch.cat([p.weight for p in parts]), requires_grad=False)
        biases = [p.bias for p in parts]
        bias = None if biases[0] is None else torch.cat([b for b in biases if b is not None])
        self.bias = None if bias is None else nn.Parameter(bias, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return functional.linear(x, self.weight, self.bias)


def fuse_projections(llm: Any) -> None:
    """Replace float q/k/v and gate/up projections with one matrix each, in place.

    INT8 models arrive fused already (packed that way from the cache). After this the
    model runs only through `GreedyDecoder`: its layers have no ``q_proj`` any more.
    """
    for module_name, (fused_name, names) in fusion_groups(llm).items():
        parent = llm.get_submodule(module_name)
        if hasattr(parent, fused_name):
            continue
        parts = [getattr(parent, name) for name in names]
        if not all(isinstance(part, nn.Linear) for part in parts):
            raise TypeError(f"{module_name}: cannot fuse {[type(p).__name__ for p in parts]}")
        setattr(parent, fused_name, _FusedFloatLinear(parts))
        for name in names:
            delattr(parent, name)


class TokenStreamer(Protocol):
    """What ``generate(streamer=…)`` calls (transformers' ``BaseStreamer``), so one object
    watches either path: ``put`` with each new token as a one-element tensor, ``end`` once
    decoding stops. (``generate()`` also puts the prompt's ids first; the loop has none.)"""

    def put(self, value: torch.Tensor) -> None: ...

    def end(self) -> None: ...


def stream_token(streamer: TokenStreamer | None, token: int) -> None:
    """Hand ``streamer`` a new token the way ``generate()`` does: a one-element tensor."""
    if streamer is not None:
        streamer.put(torch.tensor([token]))


@dataclass
class _Layer:
    input_norm: torch.Tensor
    post_norm: torch.Tensor
    q_norm: torch.Tensor
    k_norm: torch.Tensor
    qkv: Callable[[torch.Tensor], torch.Tensor]
    o: Callable[[torch.Tensor], torch.Tensor]
    gate_up: Callable[[torch.Tensor], torch.Tensor]
    down: Callable[[torch.Tensor], torch.Tensor]


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    # transformers' Qwen3RMSNorm, operation for operation (the same rounding in bf16).
    dtype = x.dtype
    x = x.to(torch.float32)
    variance = x.pow(2).mean(-1, keepdim=True)
    x = x * torch.rsqrt(variance + eps)
    return weight * x.to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def end_token_ids(llm: Any) -> list[int]:
    """The tokens that end generation, as ``generate()`` reads them."""
    ids = llm.generation_config.eos_token_id
    if ids is None:
        return []
    return [int(ids)] if isinstance(ids, int) else [int(i) for i in ids]


class GreedyDecoder:
    """Greedy decoding for a loaded (fused) transformers Qwen3ForCausalLM.

    Holds references to the model's own weights; no copies. One decode at a time.
    ``dtype`` is the compute dtype: the LLM is cast to it once, as funasr's
    ``inference_llm`` does before every ``generate()`` — on a bf16 model that rounds the
    rotary frequencies (and CUDA INT8 scales) to bf16, and the tokens must not change.
    """

    def __init__(self, llm: Any, dtype: torch.dtype = torch.float32):
        llm.to(dtype)
        config = llm.config
        self.heads = int(config.num_attention_heads)
        self.kv_heads = int(config.num_key_value_heads)
        self.head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // self.heads)
        self.eps = float(config.rms_norm_eps)
        self.scaling = self.head_dim**-0.5
        self.end_tokens = end_token_ids(llm)
        fuse_projections(llm)
        self.embedding: nn.Module = llm.get_input_embeddings()
        self.head: nn.Module = llm.lm_head
        self.final_norm: torch.Tensor = llm.model.norm.weight
        # the module, not its buffer: an idle offload to RAM replaces buffers
        self.rotary: Any = llm.model.rotary_emb
        self.layers = [
            _Layer(
                layer.input_layernorm.weight,
                layer.post_attention_layernorm.weight,
                layer.self_attn.q_norm.weight,
                layer.self_attn.k_norm.weight,
                layer.self_attn.qkv_proj,
                layer.self_attn.o_proj,
                layer.mlp.gate_up_proj,
                layer.mlp.down_proj,
            )
            for layer in llm.model.layers
        ]
        self.graph: object | None = None  # decoder_graph.CudaGraphStep, on CUDA

    # ------------------------------------------------------------------ one forward

    def rope_table(
        self, length: int, dtype: torch.dtype, device: torch.device, first_position: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin for ``length`` positions from ``first_position`` (row i: position
        first_position + i), as Qwen3RotaryEmbedding computes them."""
        end = first_position + length
        positions = torch.arange(first_position, end, device=device, dtype=torch.float32)
        inv_freq = self.rotary.inv_freq.to(device=device, dtype=torch.float32)
        freqs = positions[:, None] * inv_freq
        emb = torch.cat((freqs, freqs), dim=-1)
        scaling = float(self.rotary.attention_scaling)
        cos = (emb.cos() * scaling).to(dtype)
        sin = (emb.sin() * scaling).to(dtype)
        return cos, sin

    def new_cache(self, length: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """Keys and values of every layer: [layers, 2, 1, kv_heads, length, head_dim]."""
        shape = (len(self.layers), 2, 1, self.kv_heads, length, self.head_dim)
        return torch.zeros(shape, dtype=dtype, device=device)

    def forward(
        self,
        x: torch.Tensor,
        cache: torch.Tensor,
        position: int | torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits of the last of ``x``'s positions ([1, T, hidden] at ``position``) [1, vocab].

        ``cos``/``sin`` hold rows for positions position..position+T-1. The keys and values
        are written into ``cache``; attention reads positions 0..position+T-1 of it.

        With a ``mask`` (one token, ``position`` a tensor; for a CUDA graph, whose shapes
        and addresses must not change): the keys go in with ``index_copy_`` and attention
        reads the whole cache, the mask (0 or -inf per position) hiding what is not written.
        """
        steps = x.shape[1]
        cos, sin = cos[None, None], sin[None, None]
        if mask is not None:
            return self._forward_static(x, cache, position, cos, sin, mask)
        assert isinstance(position, int)
        end = position + steps
        for index, layer in enumerate(self.layers):
            keys, values = cache[index, 0], cache[index, 1]
            q, k, v = self.attention_inputs(layer, x, cos, sin)
            keys[:, :, position:end], values[:, :, position:end] = k, v
            attention = functional.scaled_dot_product_attention(
                q,
                keys[:, :, :end],
                values[:, :, :end],
                is_causal=steps > 1,
                scale=self.scaling,
                enable_gqa=True,
            )
            x = self.after_attention(layer, x, attention.transpose(1, 2).reshape(1, steps, -1))
        return self.last_logits(x)

    # A layer is attention_inputs, then the attention (which differs: cache slices here, a
    # fixed cache for a CUDA graph, per-row positions in `batch_loop`), then after_attention.

    def attention_inputs(
        self, layer: _Layer, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A layer's queries and keys (normed, then rotated by ``cos``/``sin``) and values
        for ``x`` [B, T, hidden], each [B, heads, T, head_dim]."""
        batch, steps = x.shape[0], x.shape[1]
        hidden = rms_norm(x, layer.input_norm, self.eps)
        qkv = layer.qkv(hidden).view(batch, steps, -1, self.head_dim)
        keys_end = self.heads + self.kv_heads
        q, k, v = qkv[:, :, : self.heads], qkv[:, :, self.heads : keys_end], qkv[:, :, keys_end:]
        q = rms_norm(q, layer.q_norm, self.eps).transpose(1, 2)
        k = rms_norm(k, layer.k_norm, self.eps).transpose(1, 2)
        return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin, v.transpose(1, 2)

    def after_attention(
        self, layer: _Layer, x: torch.Tensor, attention: torch.Tensor
    ) -> torch.Tensor:
        """The residual stream after the layer, given its attention [B, T, heads·head_dim]."""
        x = x + layer.o(attention)
        hidden = rms_norm(x, layer.post_norm, self.eps)
        gate, up = layer.gate_up(hidden).chunk(2, dim=-1)
        return x + layer.down(functional.silu(gate) * up)

    def last_logits(self, x: torch.Tensor) -> torch.Tensor:
        last = rms_norm(x[:, -1:], self.final_norm, self.eps)
        logits: torch.Tensor = self.head(last)
        return logits[:, -1]

    def _forward_static(
        self,
        x: torch.Tensor,
        cache: torch.Tensor,
        position: int | torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mask: torch.Tensor,
    ) -> torch.Tensor:
        assert isinstance(position, torch.Tensor) and x.shape[1] == 1
        groups = self.heads // self.kv_heads
        for index, layer in enumerate(self.layers):
            keys, values = cache[index, 0], cache[index, 1]
            q, k, v = self.attention_inputs(layer, x, cos, sin)
            keys.index_copy_(2, position, k)
            values.index_copy_(2, position, v)
            # one query per head: each key/value head's queries as its rows (no repeated KV)
            grouped = q.reshape(1, self.kv_heads, groups, self.head_dim)
            attention = functional.scaled_dot_product_attention(
                grouped, keys, values, attn_mask=mask, scale=self.scaling
            )
            x = self.after_attention(layer, x, attention.reshape(1, 1, -1))
        return self.last_logits(x)

    # ------------------------------------------------------------------ the loop

    def generate(
        self,
        inputs_embeds: torch.Tensor,
        max_new_tokens: int,
        min_new_tokens: int = 0,
        streamer: TokenStreamer | None = None,
        first_position: int = 0,
    ) -> list[int]:
        """Greedy tokens after the prompt ``inputs_embeds`` ([1, T, hidden]), as
        ``generate(inputs_embeds=…, max_new_tokens=…, min_new_tokens=…, streamer=…)``
        makes them. ``first_position``: the prompt's first rotary position, which
        ``generate()`` takes from the attention mask (its length minus T); the cache is
        indexed from 0 whatever it is."""
        prompt = inputs_embeds.shape[1]
        dtype, device = inputs_embeds.dtype, inputs_embeds.device
        if device.type == "cuda":
            from nanodictate.core.asr.decoder_graph import graph_generate

            graphed = graph_generate(
                self, inputs_embeds, max_new_tokens, min_new_tokens, streamer, first_position
            )
            if graphed is not None:
                return graphed
        cache = self.new_cache(prompt + max_new_tokens, dtype, device)
        cos, sin = self.rope_table(prompt + max_new_tokens, dtype, device, first_position)
        tokens: list[int] = []
        x, position = inputs_embeds, 0
        while len(tokens) < max_new_tokens:
            steps = x.shape[1]
            logits = self.forward(
                x,
                cache,
                position,
                cos[position : position + steps],
                sin[position : position + steps],
            )
            token = self.choose(logits, len(tokens) < min_new_tokens)
            tokens.append(token)
            stream_token(streamer, token)
            if token in self.end_tokens:
                break
            position += steps
            x = self.embed(token, device)
        if streamer is not None:
            streamer.end()
        return tokens

    def choose(self, logits: torch.Tensor, end_forbidden: bool) -> int:
        """The greedy choice; while ``end_forbidden`` the end tokens cannot win."""
        scores = logits.float()
        if end_forbidden and self.end_tokens:
            scores[:, self.end_tokens] = -float("inf")
        return int(scores.argmax(dim=-1).item())

    def embed(self, token: int, device: torch.device) -> torch.Tensor:
        ids = torch.tensor([[token]], device=device)
        embedded: torch.Tensor = self.embedding(ids)
        return embedded
