"""One audio chunk to text through funasr's front half and our decode loop.

funasr's ``FunASRNano.inference`` does three things: the prompt (``get_prompt``,
``generate_chatml``), the prompt's embeddings with the audio in them (``inference_prepare``:
fbank, encoder, adaptor, tokenizer), then transformers' ``generate()`` and the text clean-up.
The first two are called here as funasr's public methods, unchanged; the third is
`GreedyDecoder` and the same clean-up. Nothing of funasr is patched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch

from nanodictate.core.asr.decoder_loop import GreedyDecoder

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class ChunkRequest:
    """What funasr's ``generate(...)`` options carried for one chunk."""

    language: str | None
    hotwords: list[str]
    itn: bool
    llm_dtype: str  # "fp32" or "bf16"
    max_new_tokens: int
    min_new_tokens: int = 0


@dataclass(frozen=True)
class Prompt:
    """The LLM's input for one chunk: the chat prompt's embeddings with the adaptor's output
    in place, and the rotary position of its first row as funasr's ``generate()`` call
    places it (`decoder_loop`: the attention mask funasr passes also covers the assistant's
    placeholder answer, and transformers numbers positions by the mask)."""

    embeds: torch.Tensor
    first_position: int


def prompt_embeddings(automodel: Any, audio: torch.Tensor, request: ChunkRequest) -> Prompt:
    """The chunk's `Prompt`, through funasr's own prompt and front end."""
    model = automodel.model
    prompt = model.get_prompt(request.hotwords, request.language, request.itn)
    chat = model.generate_chatml(prompt, audio)
    # AutoModel.inference passes its kwargs (tokenizer, frontend, device, dataset_conf…)
    kwargs = dict(automodel.kwargs)
    embeds, _contents, batch, *_ = model.inference_prepare([chat], None, ["chunk"], **kwargs)
    first_position = int(batch["attention_mask"].shape[1]) - int(embeds.shape[1])
    return Prompt(embeds.to(DTYPES[request.llm_dtype]), first_position)


def llm_autocast(device_type: str, llm_dtype: str) -> torch.autocast:
    """The autocast funasr's ``inference_llm`` sets around decoding: on for bf16."""
    dtype = DTYPES[llm_dtype]
    return torch.autocast(device_type=device_type, enabled=dtype != torch.float32, dtype=dtype)


def decode_tokens(
    decoder: GreedyDecoder,
    embeds: torch.Tensor,
    request: ChunkRequest,
    device_type: str,
    first_position: int = 0,
) -> list[int]:
    """The greedy tokens, under the autocast funasr's ``inference_llm`` sets for bf16."""
    with llm_autocast(device_type, request.llm_dtype):
        return decoder.generate(
            embeds,
            request.max_new_tokens,
            request.min_new_tokens,
            first_position=first_position,
        )


def device_type_of(automodel: Any) -> str:
    """Where funasr's AutoModel runs: "cpu" or "cuda"."""
    return torch.device(automodel.kwargs.get("device", "cpu")).type


def tokens_to_text(automodel: Any, tokens: list[int]) -> str:
    """funasr's clean-up of the decoded text (special tokens dropped, "/sil" and runs of
    white space made single spaces)."""
    response = str(automodel.kwargs["tokenizer"].decode(tokens, skip_special_tokens=True))
    return re.sub(r"\s+", " ", response.replace("/sil", " "))


def transcribe_chunk(
    automodel: Any, decoder: GreedyDecoder | None, audio: torch.Tensor, request: ChunkRequest
) -> str:
    """The chunk's text: through ``decoder``, or funasr's ``generate()`` when it is None
    (the path before the loop, kept for the benchmark's comparison)."""
    if decoder is None:
        results = automodel.generate(input=audio, **generate_options(request))
        return str(results[0].get("text", "")) if results else ""
    prompt = prompt_embeddings(automodel, audio, request)
    tokens = decode_tokens(
        decoder, prompt.embeds, request, device_type_of(automodel), prompt.first_position
    )
    return tokens_to_text(automodel, tokens)


def generate_options(request: ChunkRequest) -> dict[str, Any]:
    """The request as keyword arguments of funasr's ``AutoModel.generate``."""
    options: dict[str, Any] = {
        "language": request.language,
        "hotwords": request.hotwords,
        "itn": request.itn,
        "llm_dtype": request.llm_dtype,
        "max_length": request.max_new_tokens,
    }
    if request.min_new_tokens:
        options["llm_kwargs"] = {"min_new_tokens": request.min_new_tokens}
    return options
