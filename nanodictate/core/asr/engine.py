"""The speech engine: load Fun-ASR-MLT-Nano, transcribe, unload — and really free the memory.

One ``Engine`` is driven from one worker thread (the tray app's QThread or the CLI's main
thread). Nothing heavy is imported until ``load``: importing this module costs no torch.

Loading (placement, the build and its fallbacks, the VAD model) is `model_load`'s.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nanodictate.core.asr import memory, model_build
from nanodictate.core.asr.chunks import join_texts as join_texts
from nanodictate.core.asr.chunks import plan_chunks
from nanodictate.core.asr.model_load import LoadedModel, ModelLoader, load_report
from nanodictate.core.asr.placement import MemoryProbe as MemoryProbe
from nanodictate.core.asr.placement import ModelSize as ModelSize
from nanodictate.core.asr.placement import Placement as Placement
from nanodictate.core.asr.placement import SystemMemoryProbe as SystemMemoryProbe
from nanodictate.core.asr.placement import plan_placement as plan_placement
from nanodictate.core.audio_input import SAMPLE_RATE, prepare_audio
from nanodictate.core.errors import EngineStateError, OutOfMemoryError
from nanodictate.core.languages import language_for
from nanodictate.core.transcriber import (
    Capabilities,
    DeviceChoice,
    EngineState,
    LoadReport,
    MemoryReport,
    Precision,
    Segment,
    Transcription,
)

if TYPE_CHECKING:
    from nanodictate.core.live_segments import LiveStep

log = logging.getLogger(__name__)

# The LLM starts to loop on segments longer than ≈15–30 s; VAD chunks stay below this.
MAX_CHUNK_SECONDS = 20.0
# Generous for fast speech (≈4–6 tokens per second), yet stops a looping decoder early.
TOKENS_PER_SECOND_CAP = 10
MIN_TOKEN_CAP = 24


def default_threads() -> int:
    # funasr's default of 4 oversubscribes small machines; more than 8 rarely helps decode.
    return max(1, min(8, os.cpu_count() or 1))


class Engine:
    """Fun-ASR-MLT-Nano with lazy load, INT8/BF16/FP32, VAD guard and a real unload.

    A `Transcriber`. In this process: the CLI and the benchmarks use it directly, the tray
    app through `EngineProcess`, which runs it in a child process.
    """

    capabilities = Capabilities(
        can_offload=True, partial_text=True, remote=False, unload_frees_process=False
    )

    def __init__(
        self,
        model_dir: Path,
        *,
        vad_dir: Path | None = None,
        cache_dir: Path,
        threads: int | None = None,
        memory_probe: MemoryProbe | None = None,
        decode_tokens: int | None = None,
        decoder_loop: bool = True,
    ) -> None:
        """``decode_tokens`` pins the number of generated tokens (benchmarks only; they may
        change the attribute between calls).
        ``decoder_loop=False`` decodes with funasr's ``generate()`` instead of our loop
        (`decoder_loop.GreedyDecoder`): the benchmark's comparison."""
        self.model_dir = Path(model_dir)
        self.vad_dir = None if vad_dir is None else Path(vad_dir)
        self.cache_dir = Path(cache_dir)
        self.threads = threads or default_threads()
        self._probe: MemoryProbe = memory_probe or SystemMemoryProbe()
        self.decode_tokens = decode_tokens
        self._decoder_loop = decoder_loop
        self._lock = threading.RLock()
        self._loaded: LoadedModel | None = None
        self._state = EngineState.UNLOADED
        self.on_state_change: Callable[[EngineState], None] | None = None

    # ------------------------------------------------------------------------ state

    @property
    def state(self) -> EngineState:
        return self._state

    @property
    def placement(self) -> Placement | None:
        return None if self._loaded is None else self._loaded.placement

    def _set_state(self, state: EngineState) -> None:
        self._state = state
        if self.on_state_change is not None:
            self.on_state_change(state)

    # ------------------------------------------------------------------------ load

    def load(
        self,
        precision: Precision | str = Precision.INT8,
        device: DeviceChoice | str = DeviceChoice.AUTO,
    ) -> LoadReport:
        """Load the model (no-op if it is already loaded the same way)."""
        precision, device = Precision(precision), DeviceChoice(device)
        with self._lock:
            loaded = self._loaded
            if loaded is not None and loaded.requested == (precision, device):
                if self._state is EngineState.OFFLOADED:
                    self._restore_to_gpu(loaded)
                return load_report(loaded.placement, 0.0, from_cache=True)
            if loaded is not None:
                del loaded  # its decoder holds the old weights: the unload must free them
                self.unload()
            self._set_state(EngineState.LOADING)
            loader = ModelLoader(
                self.model_dir,
                self.vad_dir,
                self.cache_dir,
                self.threads,
                self._probe,
                self._decoder_loop,
            )
            try:
                self._loaded, report = loader.load(precision, device)
            except BaseException:
                self._drop()
                self._set_state(EngineState.UNLOADED)
                raise
            self._set_state(EngineState.READY)
            return report

    # ------------------------------------------------------------------------ transcribe

    def transcribe(
        self,
        audio: np.ndarray[Any, Any] | str | os.PathLike[str],
        sample_rate: int | None = None,
        *,
        language: str = "en",
        hotwords: Sequence[str] = (),
        itn: bool = True,
    ) -> Transcription:
        """Text for the speech in ``audio``; empty text (and no LLM call) for silence."""
        chosen = language_for(language)
        samples = prepare_audio(audio, sample_rate)
        with self._lock:
            loaded = self._ready_model()
            started = time.perf_counter()
            timings: dict[str, float] = {}
            chunks = self._speech_chunks(loaded, samples, timings)
            if not chunks:
                log.info("No speech in %.1f s of audio", len(samples) / SAMPLE_RATE)
                return Transcription("", chosen.code, len(samples) / SAMPLE_RATE, (), timings)
            words = prompt_hotwords(hotwords)
            segments: list[Segment] = []
            decode_started = time.perf_counter()
            for start, end in chunks:
                text = self._decode(loaded, samples[start:end], chosen.prompt_name, words, itn)
                segments.append(Segment(start / SAMPLE_RATE, end / SAMPLE_RATE, text))
            timings["decode"] = time.perf_counter() - decode_started
            timings["total"] = time.perf_counter() - started
            return Transcription(
                join_texts([segment.text for segment in segments]),
                chosen.code,
                len(samples) / SAMPLE_RATE,
                tuple(segments),
                timings,
            )

    def transcribe_settled(
        self,
        audio: np.ndarray[Any, Any],
        *,
        language: str = "en",
        hotwords: Sequence[str] = (),
        itn: bool = True,
        guess_open: bool = False,
    ) -> LiveStep:
        """While a recording goes on: decode the chunks at the start of ``audio`` (16 kHz,
        the part of the recording not transcribed yet) that later audio can no longer change
        (`core.live_segments.plan_live`: the cuts `transcribe` would make in the whole
        recording); with ``guess_open``, also a guess at the rest, for the live preview.
        Never loads the model; without a VAD model nothing settles."""
        from nanodictate.core.live_segments import LiveStep, SettledChunk, plan_live

        chosen = language_for(language)
        samples = prepare_audio(audio, SAMPLE_RATE)
        with self._lock:
            loaded = self._ready_model()
            if loaded.detector is None:
                return LiveStep((), None, 0.0, 0.0)
            plan = plan_live(loaded.detector.speech_segments(samples), len(samples))
            words = prompt_hotwords(hotwords)
            started = time.perf_counter()
            settled = tuple(
                SettledChunk(
                    s, e, self._decode(loaded, samples[s:e], chosen.prompt_name, words, itn)
                )
                for s, e in plan.settled
            )
            guessed = plan.open if guess_open else []
            texts = [
                self._decode(loaded, samples[s:e], chosen.prompt_name, words, itn)
                for s, e in guessed
            ]
            decoded = sum(e - s for s, e in [*plan.settled, *guessed]) / SAMPLE_RATE
            open_text = join_texts(texts) if guessed else None
            return LiveStep(settled, open_text, decoded, time.perf_counter() - started)

    def _speech_chunks(
        self, loaded: LoadedModel, samples: np.ndarray[Any, Any], timings: dict[str, float]
    ) -> list[tuple[int, int]]:
        total = len(samples)
        if loaded.detector is None:
            speech = [(0, total)]
        else:
            started = time.perf_counter()
            speech = loaded.detector.speech_segments(samples)
            timings["vad"] = time.perf_counter() - started
        if not speech:
            return []
        return plan_chunks(speech, total, max_chunk_seconds=MAX_CHUNK_SECONDS)

    def _decode(
        self,
        loaded: LoadedModel,
        chunk: np.ndarray[Any, Any],
        prompt_language: str,
        hotwords: list[str],
        itn: bool,
    ) -> str:
        import torch

        from nanodictate.core.asr.funasr_runtime import quiet
        from nanodictate.core.asr.loop_inference import ChunkRequest, transcribe_chunk

        seconds = len(chunk) / SAMPLE_RATE
        cap = max(MIN_TOKEN_CAP, math.ceil(seconds * TOKENS_PER_SECOND_CAP))
        request = ChunkRequest(
            prompt_language,
            hotwords,
            itn,
            loaded.llm_dtype,
            max_new_tokens=cap if self.decode_tokens is None else self.decode_tokens,
            min_new_tokens=self.decode_tokens or 0,
        )
        # funasr takes a float32 torch tensor for Nano (a numpy array raises TypeError).
        tensor = torch.from_numpy(np.ascontiguousarray(chunk, dtype=np.float32))
        out_of_memory = False
        try:
            with torch.inference_mode(), quiet():
                text = transcribe_chunk(loaded.automodel, loaded.decoder, tensor, request)
        except torch.cuda.OutOfMemoryError:
            out_of_memory = True
        if out_of_memory:
            # Out of the except block, whose traceback held generate's GPU tensors.
            del loaded
            self._fall_back_after_cuda_oom()
            assert self._loaded is not None
            return self._decode(self._loaded, chunk, prompt_language, hotwords, itn)
        return text.strip()

    def _fall_back_after_cuda_oom(self) -> None:
        loaded = self._loaded
        assert loaded is not None
        precision = loaded.placement.precision
        log.warning("CUDA out of memory during transcription of %s; falling back", precision)
        self.unload()
        if precision is not Precision.INT8:
            try:
                self.load(Precision.INT8, DeviceChoice.CUDA)
                return
            except OutOfMemoryError:
                pass
        self.load(Precision.INT8, DeviceChoice.CPU)

    # ------------------------------------------------------------------------ idle

    def offload(self) -> bool:
        """Move the weights from the GPU to RAM (the first tier of idle). False on CPU."""
        with self._lock:
            loaded = self._loaded
            if loaded is None or loaded.placement.device != "cuda":
                return False
            if self._state is EngineState.OFFLOADED:
                return True
            loaded.automodel.model.to("cpu")
            if loaded.decoder is not None:
                loaded.decoder.graph = None  # a CUDA graph holds the old weights' addresses
            memory.release_freed_memory()
            self._set_state(EngineState.OFFLOADED)
            return True

    def _ready_model(self) -> LoadedModel:
        """The loaded model, back on the GPU if it was parked in RAM (under the lock)."""
        loaded = self._loaded
        if loaded is None:
            raise EngineStateError("The speech model is not loaded.")
        if self._state is EngineState.OFFLOADED:
            self._restore_to_gpu(loaded)
        return loaded

    def _restore_to_gpu(self, loaded: LoadedModel) -> None:
        loaded.automodel.model.to("cuda")
        self._set_state(EngineState.READY)

    def unload(self) -> None:
        """Drop every reference to the model and give the memory back to the OS."""
        with self._lock:
            if self._loaded is None and self._state is EngineState.UNLOADED:
                return
            self._drop()
            self._set_state(EngineState.UNLOADED)

    def _drop(self) -> None:
        loaded, self._loaded = self._loaded, None
        if loaded is not None:
            model_build.release_automodel(loaded.automodel)
            if loaded.detector is not None:
                loaded.detector.unload()
            del loaded
        memory.release_freed_memory()

    # ------------------------------------------------------------------------ memory

    def memory_report(self) -> MemoryReport:
        held: dict[str, int] = {}
        loaded = self._loaded
        if loaded is not None:
            from nanodictate.core.asr.int8 import module_bytes

            held = module_bytes(loaded.automodel.model)
        cuda = memory.cuda_memory()
        return MemoryReport(
            process_rss=memory.process_rss(),
            model_cpu_bytes=held.get("cpu", 0),
            model_gpu_bytes=held.get("cuda", 0),
            cuda_allocated=0 if cuda is None else cuda.allocated,
            cuda_reserved=0 if cuda is None else cuda.reserved,
        )


def prompt_hotwords(hotwords: Sequence[str]) -> list[str]:
    """The hotwords the prompt gets: stripped, blanks dropped."""
    return [word.strip() for word in hotwords if word.strip()]
