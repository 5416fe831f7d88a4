"""The speech engine: load Fun-ASR-MLT-Nano, transcribe, unload — and really free the memory.

One ``Engine`` is driven from one worker thread (the tray app's QThread or the CLI's main
thread). Nothing heavy is imported until ``load``: importing this module costs no torch.

Loading, in order:
1. decide precision and device from the memory that is free (fall back to INT8, then CPU),
   and the LLM's compute dtype from the GPU (fp32 where it has no bf16; `placement`);
2. verify the model folder (clear message for a missing or damaged file);
3. let funasr's AutoModel parse the folder and build tokenizer, frontend and model — the
   model with parameters on the meta device — while our loader fills the weights from a
   memory-mapped checkpoint (or, for INT8, from the quantized cache made on first use);
4. load the FSMN-VAD model, which guards the LLM against silence and splits long audio.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nanodictate.core.asr import memory, model_build
from nanodictate.core.asr.chunks import join_texts as join_texts
from nanodictate.core.asr.chunks import plan_chunks
from nanodictate.core.asr.placement import MemoryProbe as MemoryProbe
from nanodictate.core.asr.placement import ModelSize as ModelSize
from nanodictate.core.asr.placement import Placement as Placement
from nanodictate.core.asr.placement import SystemMemoryProbe as SystemMemoryProbe
from nanodictate.core.asr.placement import gpu_has_native_bf16, placement_after_gpu_oom
from nanodictate.core.asr.placement import plan_placement as plan_placement
from nanodictate.core.audio_input import SAMPLE_RATE, prepare_audio
from nanodictate.core.errors import EngineStateError, OutOfMemoryError
from nanodictate.core.languages import language_for
from nanodictate.core.models.store import FUN_ASR_MLT_NANO, verify_model_folder
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
    from nanodictate.core.asr.vad import SpeechDetector

log = logging.getLogger(__name__)

# The LLM starts to loop on segments longer than ≈15–30 s; VAD chunks stay below this.
MAX_CHUNK_SECONDS = 20.0
# Generous for fast speech (≈4–6 tokens per second), yet stops a looping decoder early.
TOKENS_PER_SECOND_CAP = 10
MIN_TOKEN_CAP = 24


@dataclass
class _Loaded:
    automodel: Any
    placement: Placement
    llm_dtype: str
    detector: SpeechDetector | None
    # What was asked for: after a fallback the same request must not reload every time.
    requested: tuple[Precision, DeviceChoice]


def _report(placement: Placement, seconds: float, from_cache: bool) -> LoadReport:
    return LoadReport(
        placement.precision,
        placement.device,
        seconds,
        from_cache,
        placement.fallback_reason,
        compute_dtype=placement.compute_dtype,
        compute_note=placement.compute_note,
    )


def default_threads() -> int:
    # funasr's default of 4 oversubscribes small machines; more than 8 rarely helps decode.
    return max(1, min(8, os.cpu_count() or 1))


class Engine:
    """Fun-ASR-MLT-Nano with lazy load, INT8/BF16/FP32, VAD guard and a real unload.

    A `Transcriber`. In this process: the CLI and the benchmarks use it directly, the tray
    app through `EngineProcess`, which runs it in a child process.
    """

    capabilities = Capabilities(
        can_offload=True, partial_text=False, remote=False, unload_frees_process=False
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
    ) -> None:
        """``decode_tokens`` pins the number of generated tokens (benchmarks only)."""
        self.model_dir = Path(model_dir)
        self.vad_dir = None if vad_dir is None else Path(vad_dir)
        self.cache_dir = Path(cache_dir)
        self.threads = threads or default_threads()
        self._probe: MemoryProbe = memory_probe or SystemMemoryProbe()
        self._decode_tokens = decode_tokens
        self._lock = threading.RLock()
        self._loaded: _Loaded | None = None
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
                return _report(loaded.placement, 0.0, from_cache=True)
            if loaded is not None:
                self.unload()
            self._set_state(EngineState.LOADING)
            try:
                report = self._load(precision, device)
            except BaseException:
                self._drop()
                self._set_state(EngineState.UNLOADED)
                raise
            self._set_state(EngineState.READY)
            return report

    def _load(self, precision: Precision, device: DeviceChoice) -> LoadReport:
        started = time.perf_counter()
        verify_model_folder(FUN_ASR_MLT_NANO, self.model_dir)
        checkpoint_path = self._checkpoint_path()

        import torch

        torch.set_num_threads(self.threads)
        placement = plan_placement(
            precision,
            device,
            self._model_size(checkpoint_path),
            self._probe,
            gpu_bf16=self._gpu_bf16(device),
        )
        if placement.fallback_reason:
            log.warning(
                "Loading %s on %s instead of %s: %s",
                placement.precision.value,
                placement.device,
                precision.value,
                placement.fallback_reason,
            )
        from nanodictate.core.asr.weights import StaleCacheError

        automodel: Any = None
        try:
            try:
                automodel, from_cache = self._build(placement, checkpoint_path)
            except StaleCacheError:
                automodel, from_cache = self._build(placement, checkpoint_path)
        except torch.cuda.OutOfMemoryError:
            if placement.device != "cuda":
                raise
        if automodel is None:
            # Out of the except block: its traceback held the half-built model's GPU tensors.
            placement = self._placement_after_load_oom(placement, device, checkpoint_path)
            try:
                automodel, from_cache = self._build(placement, checkpoint_path)
            except torch.cuda.OutOfMemoryError:
                if placement.device != "cuda":
                    raise
                self._drop()
                placement = Placement(Precision.INT8, "cpu", placement.fallback_reason)
                automodel, from_cache = self._build(placement, checkpoint_path)

        detector = self._load_detector()
        self._loaded = _Loaded(
            automodel, placement, placement.compute_dtype, detector, (precision, device)
        )
        seconds = time.perf_counter() - started
        log.info(
            "Model loaded: %s on %s, %s compute%s, in %.1f s%s",
            placement.precision.value,
            placement.device,
            placement.compute_dtype,
            f" ({placement.compute_note})" if placement.compute_note else "",
            seconds,
            " (INT8 cache)" if from_cache else "",
        )
        return _report(placement, seconds, from_cache)

    @staticmethod
    def _gpu_bf16(device: DeviceChoice) -> bool:
        return device is DeviceChoice.CPU or gpu_has_native_bf16()

    def _placement_after_load_oom(
        self, failed: Placement, device: DeviceChoice, checkpoint_path: Path
    ) -> Placement:
        self._drop()
        log.warning("CUDA out of memory while loading %s; falling back", failed.precision.value)
        size = self._model_size(checkpoint_path)
        return placement_after_gpu_oom(failed, device, size, self._probe, self._gpu_bf16(device))

    def _model_size(self, checkpoint_path: Path) -> ModelSize:
        return model_build.model_size(checkpoint_path)

    def _checkpoint_path(self) -> Path:
        return model_build.checkpoint_path(self.model_dir)

    def _build(self, placement: Placement, checkpoint_path: Path) -> tuple[Any, bool]:
        return model_build.build_model(
            self.model_dir,
            placement,
            checkpoint_path,
            cache_dir=self.cache_dir,
            threads=self.threads,
        )

    def _load_detector(self) -> SpeechDetector | None:
        if self.vad_dir is None:
            log.warning("No VAD model: silence is not filtered and long audio is cut blindly")
            return None
        from nanodictate.core.asr.vad import SpeechDetector
        from nanodictate.core.models.store import FSMN_VAD

        verify_model_folder(FSMN_VAD, self.vad_dir)
        detector = SpeechDetector(self.vad_dir, threads=1)
        detector.load()
        return detector

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
            loaded = self._loaded
            if loaded is None:
                raise EngineStateError("The speech model is not loaded.")
            if self._state is EngineState.OFFLOADED:
                self._restore_to_gpu(loaded)
            started = time.perf_counter()
            timings: dict[str, float] = {}
            chunks = self._speech_chunks(loaded, samples, timings)
            if not chunks:
                log.info("No speech in %.1f s of audio", len(samples) / SAMPLE_RATE)
                return Transcription("", chosen.code, len(samples) / SAMPLE_RATE, (), timings)
            words = [w.strip() for w in hotwords if w.strip()]
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

    def _speech_chunks(
        self, loaded: _Loaded, samples: np.ndarray[Any, Any], timings: dict[str, float]
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
        loaded: _Loaded,
        chunk: np.ndarray[Any, Any],
        prompt_language: str,
        hotwords: list[str],
        itn: bool,
    ) -> str:
        import torch

        from nanodictate.core.asr.funasr_runtime import quiet

        seconds = len(chunk) / SAMPLE_RATE
        options: dict[str, Any] = {
            "language": prompt_language,
            "hotwords": hotwords,
            "itn": itn,
            "llm_dtype": loaded.llm_dtype,
            "max_length": max(MIN_TOKEN_CAP, math.ceil(seconds * TOKENS_PER_SECOND_CAP)),
        }
        if self._decode_tokens is not None:
            options["max_length"] = self._decode_tokens
            options["llm_kwargs"] = {"min_new_tokens": self._decode_tokens}
        # funasr takes a float32 torch tensor for Nano (a numpy array raises TypeError).
        tensor = torch.from_numpy(np.ascontiguousarray(chunk, dtype=np.float32))
        out_of_memory = False
        try:
            with torch.inference_mode(), quiet():
                results = loaded.automodel.generate(input=tensor, **options)
        except torch.cuda.OutOfMemoryError:
            out_of_memory = True
        if out_of_memory:
            # Out of the except block, whose traceback held generate's GPU tensors.
            del loaded
            self._fall_back_after_cuda_oom()
            assert self._loaded is not None
            return self._decode(self._loaded, chunk, prompt_language, hotwords, itn)
        if not results:
            return ""
        return str(results[0].get("text", "")).strip()

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
            memory.release_freed_memory()
            self._set_state(EngineState.OFFLOADED)
            return True

    def _restore_to_gpu(self, loaded: _Loaded) -> None:
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
