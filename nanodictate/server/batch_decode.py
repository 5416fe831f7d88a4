"""Several requests through one batched decode.

`Engine.transcribe` decodes one recording, one speech chunk at a time. Here a batch is every
speech chunk of every request: each chunk gets its own prompt (its request's language,
hotwords and ITN) and its own token cap, and the engine's decode loop advances all of them
in one step (`batch_loop.generate_batch`); the VAD guard and the long-audio split are the
engine's own (`SpeechDetector`, `plan_chunks`).

A batch of one goes through `Engine.transcribe`, and so does every request of a batch that
ran out of GPU memory: the engine's fallback (INT8, then the CPU) then applies to each.
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
    prompt_hotwords,
)
from nanodictate.core.asr.model_load import LoadedModel
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


def _loaded_model(engine: Engine) -> LoadedModel:
    """The engine's loaded model (funasr's AutoModel, the VAD, our decode loop).

    The engine keeps it private; the server needs the model itself to batch requests.
    """
    loaded: LoadedModel | None = getattr(engine, "_loaded", None)
    if loaded is None or loaded.decoder is None:
        raise EngineStateError("The speech model is not loaded with its decode loop.")
    return loaded


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
        loaded = _loaded_model(self.engine)
        detector = loaded.detector
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
            texts.update(zip(group, _decode_group(loaded, jobs, group), strict=True))
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
    loaded: LoadedModel, jobs: Sequence[TranscriptionJob], group: Sequence[_Chunk]
) -> list[str]:
    """The group's chunks decoded together, each after its own prompt."""
    import torch

    from nanodictate.core.asr.batch_loop import generate_batch
    from nanodictate.core.asr.funasr_runtime import quiet
    from nanodictate.core.asr.loop_inference import (
        ChunkRequest,
        device_type_of,
        llm_autocast,
        prompt_embeddings,
        tokens_to_text,
    )

    assert loaded.decoder is not None
    requests = []
    for chunk in group:
        job = jobs[chunk.job]
        seconds = (chunk.end - chunk.start) / SAMPLE_RATE
        requests.append(
            ChunkRequest(
                language_for(job.language).prompt_name,
                prompt_hotwords(job.hotwords),
                job.itn,
                loaded.llm_dtype,
                max_new_tokens=max(MIN_TOKEN_CAP, math.ceil(seconds * TOKENS_PER_SECOND_CAP)),
            )
        )
    with torch.inference_mode(), quiet():
        prompts = [
            prompt_embeddings(loaded.automodel, _audio_of(jobs[chunk.job], chunk), request)
            for chunk, request in zip(group, requests, strict=True)
        ]
        # the placeholder answer's length: the same for every chunk
        (first_position,) = {prompt.first_position for prompt in prompts}
        with llm_autocast(device_type_of(loaded.automodel), loaded.llm_dtype):
            tokens = generate_batch(
                loaded.decoder,
                [prompt.embeds for prompt in prompts],
                [request.max_new_tokens for request in requests],
                first_position,
            )
    return [tokens_to_text(loaded.automodel, own).strip() for own in tokens]


def _audio_of(job: TranscriptionJob, chunk: _Chunk) -> Any:
    import torch

    samples = np.ascontiguousarray(job.samples[chunk.start : chunk.end], dtype=np.float32)
    return torch.from_numpy(samples)


def _is_cuda_out_of_memory(error: BaseException) -> bool:
    import torch

    return isinstance(error, torch.cuda.OutOfMemoryError)
