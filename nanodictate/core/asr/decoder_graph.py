"""The decode loop's per-token step replayed from a CUDA graph.

On a GPU a token of the 0.6 B decoder is a few hundred small kernels, each launched from
Python: launch overhead, not arithmetic, sets the pace. A ``torch.cuda.CUDAGraph`` records
the step's kernels once and replays them with one call. A graph fixes shapes and addresses,
so the step works on static buffers: the next token's id, its position, a KV cache of
``CAPACITY`` positions and an attention mask (0 where written, -inf elsewhere) that the
replay reads; `GreedyDecoder.forward`'s masked form does the arithmetic.

The prompt's prefill (one call, many positions) runs eagerly into the same cache. A decode
that would not fit the capacity runs eagerly as a whole. The graph holds the weights'
addresses: `forget_graph` drops it whenever the weights move (idle offload to RAM).

Written without a GPU to run it here. Its buffers and masked step are tested on the CPU, the
graph replaced by running the step (`tests/test_decoder_loop.py`); ``bench/gpu/cases.py
--case decode-loop`` checks its tokens against ``generate()`` and times both on a lent GPU.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from nanodictate.core.asr.decoder_loop import GreedyDecoder, TokenStreamer, stream_token

log = logging.getLogger(__name__)

# Prompt (≈60 tokens + ≈170 for a 20 s chunk) plus the token cap (≤ 200 for 20 s).
CAPACITY = 512


class CudaGraphStep:
    """Static buffers and the captured one-token step for one decoder, dtype and device."""

    def __init__(
        self,
        decoder: GreedyDecoder,
        dtype: torch.dtype,
        device: torch.device,
        first_position: int,
    ):
        self.decoder = decoder
        self.key = (dtype, device, first_position)
        self.cache = decoder.new_cache(CAPACITY, dtype, device)
        self.cos, self.sin = decoder.rope_table(CAPACITY, dtype, device, first_position)
        self.token = torch.zeros((1, 1), dtype=torch.long, device=device)
        self.position = torch.zeros(1, dtype=torch.long, device=device)
        self.mask = torch.full((1, 1, 1, CAPACITY), -float("inf"), dtype=dtype, device=device)
        self.graph, self.logits = self._capture(device)
        self.cache.zero_()

    def _capture(self, device: torch.device) -> tuple[Any, torch.Tensor]:
        """The graph of `_step` and the logits buffer each replay writes."""
        graph = torch.cuda.CUDAGraph()
        side = torch.cuda.Stream(device)  # type: ignore[no-untyped-call]
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):  # warm-up outside the graph: kernel choices, probes
            for _ in range(2):
                self._step()
        torch.cuda.current_stream(device).wait_stream(side)
        with torch.cuda.graph(graph):
            logits = self._step()
        return graph, logits

    def _step(self) -> torch.Tensor:
        x = self.decoder.embedding(self.token)
        cos = self.cos.index_select(0, self.position)
        sin = self.sin.index_select(0, self.position)
        return self.decoder.forward(x, self.cache, self.position, cos, sin, self.mask)

    def generate(
        self,
        inputs_embeds: torch.Tensor,
        max_new_tokens: int,
        min_new_tokens: int,
        streamer: TokenStreamer | None,
    ) -> list[int]:
        decoder = self.decoder
        prompt = inputs_embeds.shape[1]
        self.mask.fill_(-float("inf"))
        logits = decoder.forward(inputs_embeds, self.cache, 0, self.cos[:prompt], self.sin[:prompt])
        self.mask[..., :prompt] = 0
        tokens: list[int] = []
        position = prompt
        while True:
            token = decoder.choose(logits, len(tokens) < min_new_tokens)
            tokens.append(token)
            stream_token(streamer, token)
            if token in decoder.end_tokens or len(tokens) >= max_new_tokens:
                if streamer is not None:
                    streamer.end()
                return tokens
            self.token.fill_(token)
            self.position.fill_(position)
            self.mask[..., position] = 0
            self.graph.replay()
            logits = self.logits
            position += 1


def graph_generate(
    decoder: GreedyDecoder,
    inputs_embeds: torch.Tensor,
    max_new_tokens: int,
    min_new_tokens: int,
    streamer: TokenStreamer | None = None,
    first_position: int = 0,
) -> list[int] | None:
    """The tokens through the CUDA graph, or None where it does not apply (then decode
    eagerly): a prompt and cap beyond the capacity."""
    if inputs_embeds.shape[1] + max_new_tokens > CAPACITY:
        return None
    step = decoder.graph
    dtype, device = inputs_embeds.dtype, inputs_embeds.device
    if not (isinstance(step, CudaGraphStep) and step.key == (dtype, device, first_position)):
        log.info("Capturing the decode step in a CUDA graph (%s, %s)", dtype, device)
        decoder.graph = step = CudaGraphStep(decoder, dtype, device, first_position)
    return step.generate(inputs_embeds, max_new_tokens, min_new_tokens, streamer)


def forget_graph(decoder: GreedyDecoder) -> None:
    """Drop the captured step (and its buffers): the weights it points at moved."""
    decoder.graph = None
