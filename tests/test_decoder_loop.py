"""Our greedy decode loop chooses exactly the tokens of transformers' generate(), in every
precision, and keeps generate()'s guards (token cap, end tokens, min_new_tokens).

The tiny replica's random weights are too weak to vary (every token is the prompt's last one),
so `lively_replica` rewrites its LLM with unit-scale random weights: varied tokens, with
near-ties among the top logits, which is what makes equality a real test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from nanodictate.core.asr import model_build
from nanodictate.core.asr.batch_loop import generate_batch
from nanodictate.core.asr.decoder_graph import CudaGraphStep
from nanodictate.core.asr.decoder_loop import GreedyDecoder, end_token_ids
from nanodictate.core.asr.engine import Engine
from nanodictate.core.asr.funasr_runtime import quiet
from nanodictate.core.asr.loop_inference import (
    ChunkRequest,
    decode_tokens,
    generate_options,
    prompt_embeddings,
)
from nanodictate.core.asr.placement import Placement
from nanodictate.core.transcriber import Precision
from nanodictate.testing.replica import DETERMINISTIC_TOKENS, build_replica
from nanodictate.testing.speech import speech

PRECISIONS = [("int8", "fp32"), ("fp32", "fp32"), ("bf16", "bf16")]
REQUESTS = [
    ("hello world, this is a dictation test", "en", "英文", []),
    ("one two three four five six", "en", "中文", ["Kubernetes", "nanodictate"]),
    ("the quick brown fox jumps over the lazy dog", "en", None, ["fox"]),
]


@pytest.fixture(scope="module")
def lively_replica(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = build_replica(tmp_path_factory.mktemp("lively") / "replica", seed=3)
    checkpoint = folder / "model.pt"
    wrapped = torch.load(checkpoint, weights_only=True)
    generator = torch.Generator().manual_seed(3)
    for name, tensor in wrapped["state_dict"].items():
        if not name.startswith("llm."):
            continue
        if tensor.ndim == 2:
            gain = 1.0 if "embed" in name else 4.0
            new = torch.randn(tensor.shape, generator=generator) * gain / tensor.shape[1] ** 0.5
        else:
            new = 1 + 0.3 * torch.randn(tensor.shape, generator=generator)
        wrapped["state_dict"][name] = new.to(tensor.dtype)
    torch.save(wrapped, checkpoint)
    return folder


def _automodel(folder: Path, cache: Path, precision: str, dtype: str, fused: bool) -> Any:
    placement = Placement(Precision(precision), "cpu", None, compute_dtype=dtype)
    checkpoint = model_build.checkpoint_path(folder)
    automodel, _ = model_build.build_model(
        folder, placement, checkpoint, cache_dir=cache, threads=2, fuse_decoder=fused
    )
    return automodel


def _generate(llm: Any, embeds: torch.Tensor, request: ChunkRequest) -> list[int]:
    """What funasr's inference_llm runs, on the same prompt embeddings."""
    bf16 = request.llm_dtype == "bf16"
    llm.to(torch.bfloat16 if bf16 else torch.float32)  # as funasr does before generate()
    with torch.autocast("cpu", enabled=bf16, dtype=torch.bfloat16):
        ids = llm.generate(
            inputs_embeds=embeds,
            max_new_tokens=request.max_new_tokens,
            min_new_tokens=request.min_new_tokens,
            pad_token_id=llm.config.pad_token_id or llm.config.eos_token_id,
        )
    tokens: list[int] = ids[0].tolist()
    return tokens


@pytest.mark.parametrize(("precision", "dtype"), PRECISIONS)
def test_the_loop_makes_generates_tokens(
    lively_replica: Path, tmp_path: Path, precision: str, dtype: str
) -> None:
    reference = _automodel(lively_replica, tmp_path, precision, dtype, fused=False)
    fused = _automodel(lively_replica, tmp_path, precision, dtype, fused=True)
    decoder = GreedyDecoder(fused.model.llm, torch.bfloat16 if dtype == "bf16" else torch.float32)
    assert not hasattr(fused.model.llm.model.layers[0].self_attn, "q_proj")
    for text, voice, language, hotwords in REQUESTS:
        audio = torch.from_numpy(speech(text, voice=voice).astype(np.float32))
        request = ChunkRequest(language, hotwords, True, dtype, max_new_tokens=30)
        with torch.inference_mode(), quiet():
            # both from position 0: this generate() call gets no attention mask
            embeds = prompt_embeddings(reference, audio, request).embeds
            expected = _generate(reference.model.llm, embeds, request)
            got = decode_tokens(decoder, embeds, request, "cpu")
        assert got == expected
        assert len(set(got)) > 5  # varied tokens, not one repeated


def _funasr_call(automodel: Any, audio: torch.Tensor, request: ChunkRequest) -> dict[str, Any]:
    """What funasr's own generate() path hands transformers' generate(), and its tokens."""
    llm = automodel.model.llm
    seen: dict[str, Any] = {}

    def recording_generate(**kwargs: Any) -> torch.Tensor:
        ids: torch.Tensor = type(llm).generate(llm, **kwargs)
        seen.update(kwargs, tokens=ids[0].tolist())
        return ids

    llm.generate = recording_generate
    try:
        automodel.generate(input=audio, **generate_options(request))
    finally:
        del llm.generate
    return seen


@pytest.mark.parametrize(("precision", "dtype"), PRECISIONS)
def test_the_loop_makes_the_tokens_of_funasrs_own_call(
    lively_replica: Path, tmp_path: Path, precision: str, dtype: str
) -> None:
    """funasr's call passes an attention mask longer than the prompt (it covers the
    placeholder answer), so transformers numbers the prompt's positions from its excess;
    the loop starts its rotary positions there and makes the same tokens. Started at 0,
    BF16 here (and INT8 on the full-size replica, after 4 tokens) made other tokens: RoPE
    at other angles rounds differently, and that grows into other tokens. The test above,
    calling generate() without the mask, could not see it."""
    reference = _automodel(lively_replica, tmp_path, precision, dtype, fused=False)
    fused = _automodel(lively_replica, tmp_path, precision, dtype, fused=True)
    compute = torch.bfloat16 if dtype == "bf16" else torch.float32
    decoder = GreedyDecoder(fused.model.llm, compute)
    for text, voice, language, hotwords in REQUESTS:
        audio = torch.from_numpy(speech(text, voice=voice).astype(np.float32))
        request = ChunkRequest(language, hotwords, True, dtype, max_new_tokens=30)
        with torch.inference_mode(), quiet():
            call = _funasr_call(reference, audio, request)
            embeds = call["inputs_embeds"]
            first_position = call["attention_mask"].shape[1] - embeds.shape[1]
            with torch.autocast("cpu", enabled=dtype == "bf16", dtype=compute):
                got = decoder.generate(embeds, 30, first_position=first_position)
        assert first_position > 0
        assert got == call["tokens"]


class _StreamedTokens:
    """A streamer as generate() takes one: a one-element tensor per new token, then end()."""

    def __init__(self) -> None:
        self.tokens: list[int] = []
        self.ended = 0

    def put(self, value: torch.Tensor) -> None:
        self.tokens += value.tolist()

    def end(self) -> None:
        self.ended += 1


def test_end_tokens_and_min_new_tokens_as_generate(models_root: Path, tmp_path: Path) -> None:
    """The deterministic replica says six tokens and then its end token; a streamer sees
    each token as it is made."""
    folder = models_root / "Fun-ASR-MLT-Nano-2512"
    reference = _automodel(folder, tmp_path, "int8", "fp32", fused=False)
    fused = _automodel(folder, tmp_path, "int8", "fp32", fused=True)
    decoder = GreedyDecoder(fused.model.llm)
    audio = torch.from_numpy(speech("hello").astype(np.float32))
    for max_new, min_new in [(30, 0), (4, 0), (12, 10)]:
        request = ChunkRequest("英文", [], True, "fp32", max_new, min_new)
        with torch.inference_mode(), quiet():
            # both from position 0: this generate() call gets no attention mask
            embeds = prompt_embeddings(reference, audio, request).embeds
            expected = _generate(reference.model.llm, embeds, request)
            got = decode_tokens(decoder, embeds, request, "cpu")
        assert got == expected
        streamed = _StreamedTokens()
        with torch.inference_mode():
            assert decoder.generate(embeds, max_new, min_new, streamed) == got
        assert streamed.tokens == got and streamed.ended == 1
        ends = end_token_ids(fused.model.llm)
        if max_new == 4:
            assert len(got) == 4 and got[-1] not in ends  # the cap
        else:  # the end token, as soon as min_new_tokens allows it
            assert len(got) == max(DETERMINISTIC_TOKENS, min_new) + 1 and got[-1] in ends


def test_engine_texts_are_the_same_with_and_without_the_loop(
    lively_replica: Path, vad_model_dir: Path, tmp_path: Path
) -> None:
    audios = [
        (speech(text, voice=voice), "zh" if language == "中文" else "en", words)
        for text, voice, language, words in REQUESTS
    ]
    texts: dict[bool, list[str]] = {}
    for loop in (False, True):
        engine = Engine(
            lively_replica, vad_dir=vad_model_dir, cache_dir=tmp_path, threads=2, decoder_loop=loop
        )
        texts[loop] = []
        # BF16 too: its texts differed until the loop placed the prompt at the rotary
        # positions funasr's attention mask gives it (`loop_inference.Prompt`).
        for precision in ("int8", "fp32", "bf16"):
            engine.load(precision, "cpu")
            loaded = engine._loaded
            assert loaded is not None and (loaded.decoder is not None) == loop
            texts[loop] += [
                engine.transcribe(audio, 16000, language=code, hotwords=words).text
                for audio, code, words in audios
            ]
        engine.unload()
    assert texts[True] == texts[False]
    assert all(texts[True])


def test_the_same_audio_gives_the_same_features_and_text(
    lively_replica: Path, tmp_path: Path
) -> None:
    """funasr's fbank dithers by default (random noise on every run); the engine turns it off,
    so a recording transcribed twice gives the same text."""
    engine = Engine(lively_replica, cache_dir=tmp_path, threads=2)
    engine.load("int8", "cpu")
    loaded = engine._loaded
    assert loaded is not None
    audio, _, language, hotwords = REQUESTS[0]
    samples = speech(audio, voice="en")
    request = ChunkRequest(language, hotwords, True, "fp32", max_new_tokens=30)
    tensor = torch.from_numpy(samples.astype(np.float32))
    with torch.inference_mode(), quiet():
        first = prompt_embeddings(loaded.automodel, tensor, request).embeds
        second = prompt_embeddings(loaded.automodel, tensor, request).embeds
    assert torch.equal(first, second)
    texts = [engine.transcribe(samples, 16000).text for _ in range(2)]
    assert texts[0] and texts[0] == texts[1]
    engine.unload()


@pytest.mark.parametrize(("precision", "dtype"), [("fp32", "fp32")])
def test_a_batch_decodes_the_tokens_of_each_prompt_alone(
    lively_replica: Path, tmp_path: Path, precision: str, dtype: str
) -> None:
    """Prompts of different lengths and token caps, one step for all: each gets exactly the
    tokens it gets alone, in FP32. (Not INT8 on the CPU: FBGEMM quantizes a call's
    activations with one scale, so there a batch's rows round differently. Not BF16: a
    bf16 matrix product over several rows rounds differently from one over a row, and this
    replica's near-ties turned one token after 11 of 30. `test_server_batch` checks the
    texts of INT8 batches on the deterministic replica.)"""
    fused = _automodel(lively_replica, tmp_path, precision, dtype, fused=True)
    compute = torch.bfloat16 if dtype == "bf16" else torch.float32
    decoder = GreedyDecoder(fused.model.llm, compute)
    caps = [30, 12, 30]
    prompts, alone = [], []
    for (text, voice, language, hotwords), cap in zip(REQUESTS, caps, strict=True):
        audio = torch.from_numpy(speech(text, voice=voice).astype(np.float32))
        request = ChunkRequest(language, hotwords, True, dtype, max_new_tokens=cap)
        with torch.inference_mode(), quiet():
            prompt = prompt_embeddings(fused, audio, request)
            prompts.append(prompt.embeds)
            alone.append(
                decode_tokens(decoder, prompt.embeds, request, "cpu", prompt.first_position)
            )
    assert len({prompt.shape[1] for prompt in prompts}) == len(prompts)
    with torch.inference_mode(), torch.autocast("cpu", enabled=dtype == "bf16", dtype=compute):
        assert generate_batch(decoder, prompts, caps, prompt.first_position) == alone


class EagerGraphStep(CudaGraphStep):
    """`CudaGraphStep` with its static buffers and masked step, but no CUDA graph (no GPU
    here): a replay runs the step, writing the logits the graph's replay would."""

    def _capture(self, device: torch.device) -> tuple[Any, torch.Tensor]:
        return self, self._step()

    def replay(self) -> None:
        self.logits = self._step()


@pytest.mark.parametrize(("precision", "dtype"), [("fp32", "fp32"), ("int8", "fp32")])
def test_the_cuda_graph_steps_arithmetic_makes_the_loops_tokens_gpu_simulated(
    lively_replica: Path, tmp_path: Path, precision: str, dtype: str
) -> None:
    """The graph's step (fixed cache, position as a tensor, a mask over what is written) is
    only captured on a GPU; run eagerly on the CPU it gives the plain loop's tokens."""
    fused = _automodel(lively_replica, tmp_path, precision, dtype, fused=True)
    decoder = GreedyDecoder(fused.model.llm, torch.float32)
    for text, voice, language, hotwords in REQUESTS:
        audio = torch.from_numpy(speech(text, voice=voice).astype(np.float32))
        request = ChunkRequest(language, hotwords, True, dtype, max_new_tokens=30)
        with torch.inference_mode(), quiet():
            prompt = prompt_embeddings(fused, audio, request)
            plain = decode_tokens(decoder, prompt.embeds, request, "cpu", prompt.first_position)
            step = EagerGraphStep(
                decoder, torch.float32, torch.device("cpu"), prompt.first_position
            )
            graphed = step.generate(prompt.embeds, 30, request.min_new_tokens, None)
        assert graphed == plain and len(set(plain)) > 5
