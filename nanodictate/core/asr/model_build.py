"""Building a loaded model from a model folder: funasr's AutoModel with our weights in place.

funasr's AutoModel parses the folder and builds the tokenizer, frontend and model class; the
model is built with its parameters on the meta device and filled here from a memory-mapped
checkpoint — in float for BF16 and FP32, from the quantized cache (made on first use) for
INT8 — in the dtype and on the device the placement chose.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from nanodictate.core.asr import memory
from nanodictate.core.asr.placement import ModelSize, Placement
from nanodictate.core.errors import ModelCorruptError
from nanodictate.core.transcriber import Precision

log = logging.getLogger(__name__)

# What AutoModel keeps of a model: the model, its kwargs (tokenizer, frontend) and a deep copy
# of those kwargs, plus attached models; any one left behind keeps megabytes to gigabytes alive.
_AUTOMODEL_PARTS = (
    "model",
    "kwargs",
    "_base_kwargs_map",
    "vad_model",
    "vad_kwargs",
    "punc_model",
    "punc_kwargs",
    "spk_model",
    "spk_kwargs",
)


def checkpoint_path(model_dir: Path) -> Path:
    """The checkpoint configuration.json names (``model.pt`` in the release)."""
    metas = json.loads((model_dir / "configuration.json").read_text(encoding="utf-8"))
    relative = str(metas.get("file_path_metas", {}).get("init_param", "model.pt"))
    return model_dir / relative


def model_size(checkpoint: Path) -> ModelSize:
    """Parameter counts from the checkpoint's tensor shapes."""
    from nanodictate.core.asr.weights import is_ctc_weight, open_checkpoint

    # Memory-mapped: only the tensor headers are read, not the 2 GB of data. A CTC branch
    # some checkpoints carry is never built, so it costs nothing.
    shapes = {k: t for k, t in open_checkpoint(checkpoint).items() if not is_ctc_weight(k)}
    llm = sum(t.numel() for name, t in shapes.items() if name.startswith("llm."))
    audio = sum(t.numel() for name, t in shapes.items() if not name.startswith("llm."))
    return ModelSize(audio=audio, llm=llm)


def build_model(
    model_dir: Path,
    placement: Placement,
    checkpoint: Path,
    *,
    cache_dir: Path,
    threads: int,
    fuse_decoder: bool = False,
) -> tuple[Any, bool]:
    """The AutoModel, and whether its INT8 weights came from the cache.

    ``fuse_decoder`` packs INT8 q/k/v and gate/up projections as one matrix each, for
    `decoder_loop.GreedyDecoder` (transformers' own forward then no longer runs).
    """
    import torch

    from nanodictate.core.asr import weights
    from nanodictate.core.asr.cache_identity import file_checksum, int8_cache_path
    from nanodictate.core.asr.funasr_runtime import build_automodel

    target = torch.device(placement.device)
    # BF16 asked for on a GPU without bf16 computes (so is loaded) in fp32.
    compute = torch.bfloat16 if placement.compute_dtype == "bf16" else torch.float32
    from_cache = False

    def load_weights(model: Any) -> None:
        nonlocal from_cache
        if placement.precision is not Precision.INT8:
            source = weights.open_checkpoint(checkpoint)
            weights.check_coverage(model, source, checkpoint)
            weights.load_float_weights(
                model, source, weights.FloatPlan(device=target, llm_dtype=compute)
            )
            return
        cache_path = int8_cache_path(cache_dir, file_checksum(checkpoint, cache_dir))
        cache = weights.open_cache(cache_path)
        from_cache = cache is not None
        if cache is None:
            source = weights.open_checkpoint(checkpoint)
            weights.check_coverage(model, source, checkpoint)
            built = weights.build_int8_cache(model, source)
            del source
            weights.save_cache(built, cache_path)
            del built
            memory.release_freed_memory()
            cache = weights.open_cache(cache_path)
            if cache is None:
                raise ModelCorruptError(f"The INT8 cache {cache_path} cannot be read back.")
        fused = None
        if fuse_decoder:
            from nanodictate.core.asr.decoder_loop import fusion_groups

            fused = {f"llm.{name}": group for name, group in fusion_groups(model.llm).items()}
        try:
            weights.load_int8_weights(model, cache, target, compute, fused)
        except weights.StaleCacheError:
            log.warning("The INT8 cache does not fit this model; rebuilding it")
            del cache
            cache_path.unlink(missing_ok=True)
            raise

    automodel = build_automodel(
        model_dir, device=placement.device, threads=threads, load_weights=load_weights
    )
    memory.release_freed_memory()
    return automodel, from_cache


def greedy_decoder(automodel: Any, compute_dtype: str) -> Any:
    """Our decode loop over the loaded LLM (`decoder_loop.GreedyDecoder`; it fuses float
    projections in place, INT8 ones were packed fused)."""
    import torch

    from nanodictate.core.asr.decoder_loop import GreedyDecoder

    dtype = torch.bfloat16 if compute_dtype == "bf16" else torch.float32
    return GreedyDecoder(automodel.model.llm, dtype)


def release_automodel(automodel: Any) -> None:
    """Drop every part of an AutoModel that holds model memory (after the INT8 layers'
    background packing has stopped: it may hold a layer)."""
    from nanodictate.core.asr.int8_packing import stop_packing

    stop_packing()
    for attribute in _AUTOMODEL_PARTS:
        if hasattr(automodel, attribute):
            setattr(automodel, attribute, None)
