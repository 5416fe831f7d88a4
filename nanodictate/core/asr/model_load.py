"""Loading the engine's model: placement, the build with its fallbacks, the VAD model.

In order:
1. decide precision and device from the memory that is free (fall back to INT8, then CPU),
   and the LLM's compute dtype from the GPU (fp32 where it has no bf16; `placement`);
2. verify the model folder (clear message for a missing or damaged file);
3. let funasr's AutoModel parse the folder and build tokenizer, frontend and model — the
   model with parameters on the meta device — while our loader fills the weights from a
   memory-mapped checkpoint (or, for INT8, from the quantized cache made on first use;
   `model_build`); a GPU running out of memory while building falls back as planning would;
4. load the FSMN-VAD model, which guards the LLM against silence and splits long audio.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nanodictate.core.asr import memory, model_build
from nanodictate.core.asr.placement import (
    MemoryProbe,
    ModelSize,
    Placement,
    gpu_has_native_bf16,
    placement_after_gpu_oom,
    plan_placement,
)
from nanodictate.core.models.store import FUN_ASR_MLT_NANO, verify_model_folder
from nanodictate.core.transcriber import DeviceChoice, LoadReport, Precision

if TYPE_CHECKING:
    from nanodictate.core.asr.decoder_loop import GreedyDecoder
    from nanodictate.core.asr.vad import SpeechDetector

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    automodel: Any
    placement: Placement
    llm_dtype: str
    detector: SpeechDetector | None
    decoder: GreedyDecoder | None  # None: funasr's generate() decodes
    # What was asked for: after a fallback the same request must not reload every time.
    requested: tuple[Precision, DeviceChoice]


def load_report(placement: Placement, seconds: float, from_cache: bool) -> LoadReport:
    return LoadReport(
        placement.precision,
        placement.device,
        seconds,
        from_cache,
        placement.fallback_reason,
        compute_dtype=placement.compute_dtype,
        compute_note=placement.compute_note,
    )


@dataclass
class ModelLoader:
    """What a load needs to know besides the precision and device asked for."""

    model_dir: Path
    vad_dir: Path | None
    cache_dir: Path
    threads: int
    probe: MemoryProbe
    decoder_loop: bool  # False: funasr's generate() decodes (no fused projections)

    def load(self, precision: Precision, device: DeviceChoice) -> tuple[LoadedModel, LoadReport]:
        started = time.perf_counter()
        verify_model_folder(FUN_ASR_MLT_NANO, self.model_dir)
        checkpoint_path = model_build.checkpoint_path(self.model_dir)

        import torch

        torch.set_num_threads(self.threads)
        placement = plan_placement(
            precision,
            device,
            self._model_size(checkpoint_path),
            self.probe,
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
        automodel, from_cache, placement = self._build_with_fallbacks(
            placement, device, checkpoint_path
        )
        decoder = (
            model_build.greedy_decoder(automodel, placement.compute_dtype)
            if self.decoder_loop
            else None
        )
        detector = self._load_detector()
        loaded = LoadedModel(
            automodel, placement, placement.compute_dtype, detector, decoder, (precision, device)
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
        return loaded, load_report(placement, seconds, from_cache)

    def _build_with_fallbacks(
        self, placement: Placement, device: DeviceChoice, checkpoint_path: Path
    ) -> tuple[Any, bool, Placement]:
        """The AutoModel, whether it came from the INT8 cache, and where it went: a stale
        INT8 cache is rebuilt once; a GPU out of memory falls back (`placement_after_gpu_oom`,
        then INT8 on the CPU)."""
        import torch

        from nanodictate.core.asr.weights import StaleCacheError

        automodel: Any = None
        from_cache = False
        try:
            try:
                automodel, from_cache = self._build(placement, checkpoint_path)
            except StaleCacheError:
                automodel, from_cache = self._build(placement, checkpoint_path)
        except torch.cuda.OutOfMemoryError:
            if placement.device != "cuda":
                raise
        if automodel is not None:
            return automodel, from_cache, placement
        # Out of the except block: its traceback held the half-built model's GPU tensors.
        memory.release_freed_memory()
        log.warning("CUDA out of memory while loading %s; falling back", placement.precision.value)
        size = self._model_size(checkpoint_path)
        placement = placement_after_gpu_oom(
            placement, device, size, self.probe, self._gpu_bf16(device)
        )
        try:
            automodel, from_cache = self._build(placement, checkpoint_path)
        except torch.cuda.OutOfMemoryError:
            if placement.device != "cuda":
                raise
            memory.release_freed_memory()
            placement = Placement(Precision.INT8, "cpu", placement.fallback_reason)
            automodel, from_cache = self._build(placement, checkpoint_path)
        return automodel, from_cache, placement

    @staticmethod
    def _gpu_bf16(device: DeviceChoice) -> bool:
        return device is DeviceChoice.CPU or gpu_has_native_bf16()

    @staticmethod
    def _model_size(checkpoint_path: Path) -> ModelSize:
        return model_build.model_size(checkpoint_path)

    def _build(self, placement: Placement, checkpoint_path: Path) -> tuple[Any, bool]:
        return model_build.build_model(
            self.model_dir,
            placement,
            checkpoint_path,
            cache_dir=self.cache_dir,
            threads=self.threads,
            fuse_decoder=self.decoder_loop,
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
