"""The speech engine: load Fun-ASR-MLT-Nano, transcribe, unload — and really free the memory.

One ``Engine`` is driven from one worker thread (the tray app's QThread or the CLI's main
thread). Nothing heavy is imported until ``load``: importing this module costs no torch.

Loading, in order:
1. decide precision and device from the memory that is free (fall back to INT8, then CPU);
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
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from nanodictate.core.asr import memory
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


_CPU_HEADROOM = 600 << 20  # activations, tokenizer, frontend, allocator slack
_CUDA_HEADROOM = 700 << 20  # activations, KV cache, cuBLAS workspace


class MemoryProbe(Protocol):
    def available_ram(self) -> int: ...
    def cuda_free(self) -> int | None: ...


class SystemMemoryProbe:
    """What the machine really has free."""

    def available_ram(self) -> int:
        return memory.available_ram()

    def cuda_free(self) -> int | None:
        import torch

        if not torch.cuda.is_available():
            return None
        free, _total = torch.cuda.mem_get_info()
        return int(free)


@dataclass(frozen=True)
class ModelSize:
    """Parameter counts, read from the checkpoint's tensor shapes."""

    audio: int  # encoder and adaptor: always fp32 (funasr runs them in fp32)
    llm: int

    def weight_bytes(self, precision: Precision) -> int:
        if precision is Precision.FP32:
            return 4 * (self.audio + self.llm)
        if precision is Precision.BF16:
            return 4 * self.audio + 2 * self.llm
        # one byte per weight, plus per-row scales, norms and biases kept in float
        return int(1.05 * (self.audio + self.llm))


@dataclass(frozen=True)
class Placement:
    precision: Precision
    device: str  # "cuda" or "cpu"
    fallback_reason: str | None = None


def plan_placement(
    precision: Precision,
    device: DeviceChoice,
    size: ModelSize,
    probe: MemoryProbe,
) -> Placement:
    """Pick the requested precision and device if they fit, else the leanest that does."""
    cuda_free = probe.cuda_free()
    reasons: list[str] = []
    if device is DeviceChoice.CUDA and cuda_free is None:
        reasons.append("no CUDA GPU is available")
    devices = (
        ["cuda", "cpu"] if cuda_free is not None and device is not DeviceChoice.CPU else ["cpu"]
    )
    candidates = [(precision, devices[0])]
    if precision is not Precision.INT8:
        candidates.append((Precision.INT8, devices[0]))
    if devices[0] == "cuda":
        candidates.append((Precision.INT8, "cpu"))

    for candidate_precision, candidate_device in candidates:
        need = size.weight_bytes(candidate_precision)
        if candidate_device == "cuda":
            free = cuda_free or 0
            need += _CUDA_HEADROOM
        else:
            free = probe.available_ram()
            need += _CPU_HEADROOM
        if need <= free:
            if (candidate_precision, candidate_device) != (precision, devices[0]) or reasons:
                reason = "; ".join(reasons) or "not enough free memory"
                return Placement(candidate_precision, candidate_device, reason)
            return Placement(candidate_precision, candidate_device)
        where = "GPU" if candidate_device == "cuda" else "RAM"
        reasons.append(
            f"{candidate_precision.value.upper()} on the {where} needs {need / 2**30:.1f} GiB, "
            f"{free / 2**30:.1f} GiB free"
        )
    raise OutOfMemoryError(
        "Not enough free memory to load the speech model: "
        + "; ".join(reasons)
        + ". Close other programs and try again."
    )


@dataclass
class _Loaded:
    automodel: Any
    placement: Placement
    llm_dtype: str
    detector: SpeechDetector | None
    # What was asked for: after a fallback the same request must not reload every time.
    requested: tuple[Precision, DeviceChoice]


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
                placement = loaded.placement
                return LoadReport(
                    placement.precision, placement.device, 0.0, True, placement.fallback_reason
                )
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
            precision, device, self._model_size(checkpoint_path), self._probe
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

        try:
            try:
                automodel, from_cache = self._build(placement, checkpoint_path)
            except StaleCacheError:
                automodel, from_cache = self._build(placement, checkpoint_path)
        except torch.cuda.OutOfMemoryError:
            if placement.device != "cuda":
                raise
            self._drop()
            fallback = Placement(Precision.INT8, "cpu", "the GPU ran out of memory while loading")
            log.warning("CUDA out of memory while loading; falling back to INT8 on the CPU")
            automodel, from_cache = self._build(fallback, checkpoint_path)
            placement = fallback

        detector = self._load_detector()
        llm_dtype = (
            "bf16"
            if placement.precision is Precision.BF16
            or (placement.precision is Precision.INT8 and placement.device == "cuda")
            else "fp32"
        )
        self._loaded = _Loaded(automodel, placement, llm_dtype, detector, (precision, device))
        seconds = time.perf_counter() - started
        log.info(
            "Model loaded: %s on %s in %.1f s%s",
            placement.precision.value,
            placement.device,
            seconds,
            " (INT8 cache)" if from_cache else "",
        )
        return LoadReport(
            placement.precision, placement.device, seconds, from_cache, placement.fallback_reason
        )

    def _model_size(self, checkpoint_path: Path) -> ModelSize:
        from nanodictate.core.asr.weights import open_checkpoint

        # Memory-mapped: only the tensor headers are read, not the 2 GB of data.
        shapes = open_checkpoint(checkpoint_path)
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

        def notify_loaded(model: Any, keys: Sequence[str]) -> None:
            # funasr disables CTC timestamps when the checkpoint lacks CTC weights (the
            # release has none); do it before the coverage check counts them as missing.
            hook = getattr(model, "on_pretrained_model_loaded", None)
            if callable(hook):
                hook(frozenset(keys))

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
                    notify_loaded(model, list(checkpoint))
                    weights.check_coverage(model, checkpoint, checkpoint_path)
                    built = weights.build_int8_cache(model, checkpoint)
                    built["source_keys"] = list(checkpoint)
                    del checkpoint
                    weights.save_cache(built, cache_path)
                    del built
                    memory.release_freed_memory()
                    cache = weights.open_cache(cache_path)
                    if cache is None:
                        raise ModelCorruptError(f"The INT8 cache {cache_path} cannot be read back.")
                else:
                    notify_loaded(model, cache.get("source_keys", []))
                activation = torch.float32 if placement.device == "cpu" else torch.bfloat16
                try:
                    weights.load_int8_weights(model, cache, target, activation)
                except weights.StaleCacheError:
                    log.warning("The INT8 cache does not fit this model; rebuilding it")
                    del cache
                    cache_path.unlink(missing_ok=True)
                    raise
            else:
                checkpoint = weights.open_checkpoint(checkpoint_path)
                notify_loaded(model, list(checkpoint))
                weights.check_coverage(model, checkpoint, checkpoint_path)
                llm_dtype = (
                    torch.bfloat16 if placement.precision is Precision.BF16 else torch.float32
                )
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
        try:
            with torch.inference_mode(), quiet():
                results = loaded.automodel.generate(input=tensor, **options)
        except torch.cuda.OutOfMemoryError:
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
