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

import dataclasses
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

from nanodictate.core.asr import memory
from nanodictate.core.asr.placement import MemoryProbe as MemoryProbe
from nanodictate.core.asr.placement import ModelSize as ModelSize
from nanodictate.core.asr.placement import Placement as Placement
from nanodictate.core.asr.placement import SystemMemoryProbe as SystemMemoryProbe
from nanodictate.core.asr.placement import cuda_bf16_traits, gpu_has_bf16
from nanodictate.core.asr.placement import plan_placement as plan_placement
from nanodictate.core.audio_input import SAMPLE_RATE, prepare_audio
from nanodictate.core.errors import EngineStateError, ModelCorruptError, OutOfMemoryError
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


def join_texts(texts: Sequence[str]) -> str:
    """Join chunk texts: no space between CJK characters, one space elsewhere."""
    joined = ""
    for text in (t.strip() for t in texts):
        if not text:
            continue
        if joined and not (_is_cjk(joined[-1]) and _is_cjk(text[0])):
            joined += " "
        joined += text
    return joined


def _is_cjk(character: str) -> bool:
    code = ord(character)
    return (
        0x3000 <= code <= 0x9FFF  # CJK punctuation, kana, unified ideographs
        or 0xAC00 <= code <= 0xD7AF  # Hangul
        or 0xFF00 <= code <= 0xFFEF  # full-width forms
    )


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
        if device is DeviceChoice.CPU:
            return True  # not asked: no GPU is used
        bf16_supported, capability = cuda_bf16_traits()
        native = gpu_has_bf16(bf16_supported, capability)
        if capability is not None and not native:
            log.info("GPU sm_%d%d has no native bf16: the LLM computes in fp32", *capability)
        return native

    def _placement_after_load_oom(
        self, failed: Placement, device: DeviceChoice, checkpoint_path: Path
    ) -> Placement:
        """Another program took the GPU's memory while we loaded (the plan saw it free): INT8
        on the GPU if that was not what failed and it still fits, else INT8 on the CPU."""
        self._drop()
        reason = f"the GPU ran out of memory while loading {failed.precision.value.upper()}"
        log.warning("CUDA out of memory while loading %s; falling back", failed.precision.value)
        if failed.precision is not Precision.INT8:
            try:
                smaller = plan_placement(
                    Precision.INT8,
                    device,
                    self._model_size(checkpoint_path),
                    self._probe,
                    gpu_bf16=self._gpu_bf16(device),
                )
            except OutOfMemoryError:
                smaller = None
            if smaller is not None and smaller.device == "cuda":
                return dataclasses.replace(smaller, fallback_reason=reason)
        return Placement(Precision.INT8, "cpu", reason)

    def _model_size(self, checkpoint_path: Path) -> ModelSize:
        from nanodictate.core.asr.weights import is_ctc_weight, open_checkpoint

        # Memory-mapped: only the tensor headers are read, not the 2 GB of data. A CTC branch
        # some checkpoints carry is never built, so it costs nothing.
        shapes = {k: t for k, t in open_checkpoint(checkpoint_path).items() if not is_ctc_weight(k)}
        llm = sum(t.numel() for name, t in shapes.items() if name.startswith("llm."))
        audio = sum(t.numel() for name, t in shapes.items() if not name.startswith("llm."))
        return ModelSize(audio=audio, llm=llm)

    def _checkpoint_path(self) -> Path:
        import json

        metas = json.loads((self.model_dir / "configuration.json").read_text(encoding="utf-8"))
        relative = str(metas.get("file_path_metas", {}).get("init_param", "model.pt"))
        return self.model_dir / relative

    def _build(self, placement: Placement, checkpoint_path: Path) -> tuple[Any, bool]:
        import torch

        from nanodictate.core.asr import weights
        from nanodictate.core.asr.funasr_runtime import build_automodel

        target = torch.device(placement.device)
        from_cache = False

        def load_weights(model: Any) -> None:
            nonlocal from_cache
            if placement.precision is Precision.INT8:
                cache_path = weights.int8_cache_path(
                    self.cache_dir, weights.file_checksum(checkpoint_path, self.cache_dir)
                )
                cache = weights.open_cache(cache_path)
                from_cache = cache is not None
                if cache is None:
                    checkpoint = weights.open_checkpoint(checkpoint_path)
                    weights.check_coverage(model, checkpoint, checkpoint_path)
                    built = weights.build_int8_cache(model, checkpoint)
                    del checkpoint
                    weights.save_cache(built, cache_path)
                    del built
                    memory.release_freed_memory()
                    cache = weights.open_cache(cache_path)
                    if cache is None:
                        raise ModelCorruptError(f"The INT8 cache {cache_path} cannot be read back.")
                activation = torch.bfloat16 if placement.compute_dtype == "bf16" else torch.float32
                try:
                    weights.load_int8_weights(model, cache, target, activation)
                except weights.StaleCacheError:
                    log.warning("The INT8 cache does not fit this model; rebuilding it")
                    del cache
                    cache_path.unlink(missing_ok=True)
                    raise
            else:
                checkpoint = weights.open_checkpoint(checkpoint_path)
                weights.check_coverage(model, checkpoint, checkpoint_path)
                # BF16 asked for on a GPU without bf16 computes (so is loaded) in fp32.
                llm_dtype = torch.bfloat16 if placement.compute_dtype == "bf16" else torch.float32
                weights.load_float_weights(
                    model, checkpoint, weights.FloatPlan(device=target, llm_dtype=llm_dtype)
                )

        automodel = build_automodel(
            self.model_dir, device=placement.device, threads=self.threads, load_weights=load_weights
        )
        memory.release_freed_memory()
        return automodel, from_cache

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
        from nanodictate.core.asr.vad import plan_chunks

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
            automodel = loaded.automodel
            # AutoModel keeps the model, its kwargs (tokenizer, frontend) and a deep copy
            # of those kwargs; any one left behind keeps megabytes to gigabytes alive.
            for attribute in (
                "model",
                "kwargs",
                "_base_kwargs_map",
                "vad_model",
                "vad_kwargs",
                "punc_model",
                "punc_kwargs",
                "spk_model",
                "spk_kwargs",
            ):
                if hasattr(automodel, attribute):
                    setattr(automodel, attribute, None)
            if loaded.detector is not None:
                loaded.detector.unload()
            del loaded, automodel
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
