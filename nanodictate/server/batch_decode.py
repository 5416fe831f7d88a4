"""Several requests through one batched decoder call.

`Engine.transcribe` decodes one recording, one speech chunk at a time. funasr's
`FunASRNano.inference_llm` decodes a list of chat items in one left-padded `llm.generate`
(its `_inference_llm_batch`, used when the model has no CTC branch, as ours is built), and
each item carries its own prompt. So a batch here is every speech chunk of every request,
each with its request's language, hotwords and ITN, decoded together; the VAD guard and the
long-audio split are the engine's own (`SpeechDetector`, `plan_chunks`).

The engine must be built with ``decoder_loop=False`` (its own loop fuses the decoder's
weights, which `generate` cannot run). A batch of one goes through `Engine.transcribe`,
and so does every request of a batch that ran out of GPU memory: the engine's fallback
(INT8, then the CPU) then applies to each.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nanodictate.core.asr.chunks import join_texts, plan_chunks
from nanodictate.core.asr.engine import (
    MAX_CHUNK_SECONDS,
    MIN_TOKEN_CAP,
    TOKENS_PER_SECOND_CAP,
    Engine,
)
from nanodictate.core.audio_input import SAMPLE_RATE
from nanodictate.core.errors import EngineStateError
from nanodictate.core.languages import language_for
from nanodictate.core.transcriber import Segment, Transcription
from nanodictate.server.upload import TranscriptionJob

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Chunk:
    job: int  # index in the batch
    start: int  # samples
    end: int


def _loaded_parts(engine: Engine) -> tuple[Any, Any, str]:
    """(funasr AutoModel, SpeechDetector or None, LLM dtype) of a loaded engine.

    The engine keeps them private; the server needs the model itself to batch requests.
    """
    loaded = getattr(engine, "_loaded", None)
    if loaded is None:
        raise EngineStateError("The speech model is not loaded.")
    return loaded.automodel, loaded.detector, str(loaded.llm_dtype)


class BatchDecoder:
    """Transcribes a batch of jobs with one engine; called from one thread at a time."""

    def __init__(self, engine: Engine, *, max_chunks_per_call: int = 16) -> None:
        self.engine = engine
        self.max_chunks_per_call = max_chunks_per_call

    def transcribe(self, jobs: Sequence[TranscriptionJob]) -> list[Transcription | Exception]:
        if len(jobs) == 1:
            return [self._one(jobs[0])]
        try:
            return list(self._batched(jobs))
        except Exception as error:
            if not _is_cuda_out_of_memory(error):
                raise
        log.warning("Out of GPU memory on a batch of %d; transcribing one by one", len(jobs))
        return [self._one(job) for job in jobs]

    def _one(self, job: TranscriptionJob) -> Transcription | Exception:
        try:
            return self.engine.transcribe(
                job.samples, SAMPLE_RATE, language=job.language, hotwords=job.hotwords, itn=job.itn
            )
        except Exception as error:
            return error

    def _batched(self, jobs: Sequence[TranscriptionJob]) -> list[Transcription]:
        automodel, detector, llm_dtype = _loaded_parts(self.engine)
        started = time.perf_counter()
        chunks: list[_Chunk] = []
        for index, job in enumerate(jobs):
            total = len(job.samples)
            speech = [(0, total)] if detector is None else detector.speech_segments(job.samples)
            if speech:
                planned = plan_chunks(speech, total, max_chunk_seconds=MAX_CHUNK_SECONDS)
                chunks.extend(_Chunk(index, start, end) for start, end in planned)
        vad_seconds = time.perf_counter() - started
        # Similar lengths together: less padding in each call.
        chunks.sort(key=lambda chunk: chunk.end - chunk.start)
        texts: dict[_Chunk, str] = {}
        for first in range(0, len(chunks), self.max_chunks_per_call):
            group = chunks[first : first + self.max_chunks_per_call]
            texts.update(zip(group, _decode_group(automodel, llm_dtype, jobs, group), strict=True))
        decode_seconds = time.perf_counter() - started - vad_seconds
        results = []
        for index, job in enumerate(jobs):
            own = sorted((c for c in chunks if c.job == index), key=lambda c: c.start)
            segments = tuple(
                Segment(c.start / SAMPLE_RATE, c.end / SAMPLE_RATE, texts[c]) for c in own
            )
            results.append(
                Transcription(
                    join_texts([segment.text for segment in segments]),
                    job.language,
                    len(job.samples) / SAMPLE_RATE,
                    segments,
                    {
                        "vad": vad_seconds,
                        "decode": decode_seconds,
                        "total": time.perf_counter() - started,
                        "batch_size": float(len(jobs)),
                    },
                )
            )
        return results


def _decode_group(
    automodel: Any, llm_dtype: str, jobs: Sequence[TranscriptionJob], group: Sequence[_Chunk]
) -> list[str]:
    """One left-padded `llm.generate` over the group's chunks, each with its own prompt."""
    import torch

    from nanodictate.core.asr.funasr_runtime import quiet

    model = automodel.model
    items = []
    for chunk in group:
        job = jobs[chunk.job]
        prompt = model.get_prompt(
            list(job.hotwords), language_for(job.language).prompt_name, job.itn
        )
        audio = np.ascontiguousarray(job.samples[chunk.start : chunk.end], dtype=np.float32)
        items.append(model.generate_chatml(prompt, torch.from_numpy(audio)))
    longest = max(chunk.end - chunk.start for chunk in group) / SAMPLE_RATE
    options = {
        **automodel.kwargs,
        "llm_dtype": llm_dtype,
        "max_length": max(MIN_TOKEN_CAP, math.ceil(longest * TOKENS_PER_SECOND_CAP)),
    }
    keys = [f"chunk{i}" for i in range(len(items))]
    with torch.inference_mode(), quiet():
        results, _meta = model.inference_llm(items, key=keys, **options)
    return [str(result.get("text", "")).strip() for result in results]


def _is_cuda_out_of_memory(error: BaseException) -> bool:
    import torch

    return isinstance(error, torch.cuda.OutOfMemoryError)
