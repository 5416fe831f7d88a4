"""Greedy decoding of several prompts at once: one decoder step for every sequence.

A decoding step reads every weight of the decoder once, whatever the number of sequences
it advances; on a GPU (and, less so, on a CPU) that read is most of the step's time. So a
server that has several requests at hand decodes them together: each prompt is prefilled
on its own (a prompt is many positions: already a matrix product), then one step advances
all of them, each at its own position, until every one has stopped.

The step is `GreedyDecoder.forward`'s layers (its `attention_inputs` and `after_attention`)
with a batch dimension:

* each sequence writes its key and value at its own position of one shared cache
  ([layers, 2, batch, kv_heads, length, head_dim]);
* attention reads the cache up to the furthest position, a mask hiding, for each
  sequence, the positions it has not written;
* a sequence that stopped (an end token, or its own token cap) keeps its place in the
  batch and its output is ignored: the requests are sorted by length before they come
  here, so they stop at about the same step, and dropping rows would copy the cache.

The tokens are those of decoding each prompt alone in FP32 (`tests/test_decoder_loop.py`).
In BF16 a matrix product over several rows can round differently from one over a row, and
the CPU's INT8 quantizes each call's activations with one scale for all rows (as any
batched INT8 path does), so there a word can differ where the model hesitates between two.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn import functional

from nanodictate.core.asr.decoder_loop import GreedyDecoder


def generate_batch(
    decoder: GreedyDecoder,
    prompts: Sequence[torch.Tensor],
    caps: Sequence[int],
    first_position: int = 0,
) -> list[list[int]]:
    """Greedy tokens after each prompt ([1, T_i, hidden], one dtype and device), at most
    ``caps[i]`` for prompt i; the end token is part of the output, as in ``generate``.
    ``first_position``: every prompt's first rotary position (`GreedyDecoder.generate`)."""
    if len(prompts) != len(caps) or not prompts:
        raise ValueError("one token cap per prompt, and at least one prompt")
    dtype, device = prompts[0].dtype, prompts[0].device
    length = max(p.shape[1] + cap for p, cap in zip(prompts, caps, strict=True))
    cache = _new_batch_cache(decoder, len(prompts), length, dtype, device)
    cos, sin = decoder.rope_table(length, dtype, device, first_position)

    chosen: list[int] = []
    for row, prompt in enumerate(prompts):
        steps = prompt.shape[1]
        logits = decoder.forward(prompt, cache[:, :, row : row + 1], 0, cos[:steps], sin[:steps])
        chosen.append(decoder.choose(logits, end_forbidden=False))
    positions = [prompt.shape[1] for prompt in prompts]  # where each next token goes
    outputs: list[list[int]] = [[] for _ in prompts]
    active = [True] * len(prompts)
    while True:
        for row, token in enumerate(chosen):
            if active[row]:
                outputs[row].append(token)
                if token in decoder.end_tokens or len(outputs[row]) >= caps[row]:
                    active[row] = False
        if not any(active):
            return outputs
        ids = torch.tensor([[token] for token in chosen], device=device)
        where = torch.tensor(positions, device=device)
        logits = _step(decoder, decoder.embedding(ids), cache, where, cos, sin)
        best = logits.float().argmax(dim=-1).tolist()
        for row in range(len(prompts)):
            if active[row]:  # a stopped row stays where it stopped
                chosen[row] = int(best[row])
                positions[row] += 1


def _new_batch_cache(
    decoder: GreedyDecoder, batch: int, length: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    shape = (len(decoder.layers), 2, batch, decoder.kv_heads, length, decoder.head_dim)
    return torch.zeros(shape, dtype=dtype, device=device)


def _step(
    decoder: GreedyDecoder,
    x: torch.Tensor,
    cache: torch.Tensor,
    positions: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
) -> torch.Tensor:
    """One token per sequence (``x``: [B, 1, hidden]) at ``positions`` ([B]); the logits
    [B, vocab]."""
    batch = x.shape[0]
    rows = torch.arange(batch, device=x.device)
    end = int(positions.max()) + 1
    # [B, 1, 1, end]: each sequence sees the positions it has written, its own included
    visible = (torch.arange(end, device=x.device)[None, :] <= positions[:, None])[:, None, None]
    cos_rows, sin_rows = cos[positions][:, None, None], sin[positions][:, None, None]
    for index, layer in enumerate(decoder.layers):
        keys, values = cache[index, 0], cache[index, 1]
        q, k, v = decoder.attention_inputs(layer, x, cos_rows, sin_rows)
        keys[rows, :, positions] = k[:, :, 0]
        values[rows, :, positions] = v[:, :, 0]
        attention = functional.scaled_dot_product_attention(
            q,
            keys[:, :, :end],
            values[:, :, :end],
            attn_mask=visible,
            scale=decoder.scaling,
            enable_gqa=True,
        )
        x = decoder.after_attention(layer, x, attention.transpose(1, 2).reshape(batch, 1, -1))
    return decoder.last_logits(x)
