"""Putting checkpoint weights into a built model: lean, checked, and cached as INT8.

funasr's own loader does ``torch.load`` then ``copy.deepcopy`` of the whole state dict and
quietly leaves random weights where keys do not match. Here the checkpoint is memory-mapped,
each tensor is copied (or quantized) straight into its place, the pages already copied are
dropped from the process, and every weight the model needs must be found — otherwise the
user gets one message saying what is wrong instead of a model that emits noise.

The model is built with its parameters on the meta device (no memory), so at no time does
the process hold a random-weight copy of the model beside the real one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nanodictate.core.asr.cache_identity import CACHE_FORMAT
from nanodictate.core.asr.int8 import (
    DynamicInt8Linear,
    Int8Embedding,
    TiedInt8Head,
    WeightOnlyInt8Linear,
    quantize_rows,
)
from nanodictate.core.asr.int8_packing import pack_in_background, unpacked_layers
from nanodictate.core.asr.memory import drop_file_pages
from nanodictate.core.errors import ModelCorruptError

log = logging.getLogger(__name__)


class StaleCacheError(ModelCorruptError):
    """The INT8 cache does not fit the model: it is deleted and rebuilt, never shown."""


_LLM_PREFIX = "llm."


@contextlib.contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Build modules whose parameters take no memory; buffers stay real.

    Buffers such as rotary frequencies are computed in constructors and are not in the
    checkpoint, so they must be built for real; parameters all come from the checkpoint.
    """
    original = nn.Module.register_parameter

    def register(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        if param is not None and param.device.type != "meta":
            param = nn.Parameter(param.to("meta"), requires_grad=False)
        original(module, name, param)

    nn.Module.register_parameter = register  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        nn.Module.register_parameter = original  # type: ignore[method-assign]


def open_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """Memory-map a checkpoint's state dict (no tensor data is read yet)."""
    try:
        loaded = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except Exception as error:  # torch raises many types for a damaged zip or pickle
        raise ModelCorruptError(
            f"{path.name} in {path.parent} cannot be read ({error.__class__.__name__}: "
            f"{error}). The file is damaged or incomplete: download the model again."
        ) from error
    # The wrappers funasr's own loader unwraps (a training checkpoint keeps the weights
    # beside its optimizer state).
    while isinstance(loaded, dict):
        wrapped = next(
            (
                loaded[key]
                for key in ("state_dict", "model_state_dict", "model")
                if isinstance(loaded.get(key), dict)
            ),
            None,
        )
        if wrapped is None:
            break
        loaded = wrapped
    if not isinstance(loaded, dict) or not all(
        isinstance(value, torch.Tensor) for value in loaded.values()
    ):
        raise ModelCorruptError(f"{path} does not hold a model state dict.")
    return {key.removeprefix("module."): value for key, value in loaded.items()}


def _release(tensor: torch.Tensor) -> None:
    """Drop the resident pages of a (contiguous) tensor read from a memory map."""
    drop_file_pages(tensor.data_ptr(), tensor.numel() * tensor.element_size())


def _parent(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    parent_name, _, child = name.rpartition(".")
    return (model.get_submodule(parent_name) if parent_name else model), child


def _parameter_names(model: nn.Module) -> dict[int, list[str]]:
    """Every name of every parameter, grouped by parameter (tied weights share a group)."""
    groups: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(param), []).append(name)
    return groups


def check_coverage(model: nn.Module, checkpoint: Mapping[str, torch.Tensor], path: Path) -> None:
    """Fail with one clear message unless the checkpoint fills every parameter exactly."""
    missing: list[str] = []
    mismatched: list[str] = []
    params = dict(model.named_parameters(remove_duplicate=False))
    for names in _parameter_names(model).values():
        found = [name for name in names if name in checkpoint]
        if not found:
            missing.append(names[0])
            continue
        expected = tuple(params[names[0]].shape)
        actual = tuple(checkpoint[found[0]].shape)
        if expected != actual:
            mismatched.append(f"{found[0]} is {list(actual)}, config.yaml wants {list(expected)}")
    unused = sorted(
        name
        for name in set(checkpoint) - set(params) - {n for n, _ in model.named_buffers()}
        if not is_ctc_weight(name)
    )
    problems: list[str] = []
    if missing:
        problems.append(
            f"{len(missing)} of {len(params)} weights are missing (first: {', '.join(missing[:3])})"
        )
    if mismatched:
        problems.append(f"{len(mismatched)} have the wrong shape (first: {mismatched[0]})")
    if len(unused) > max(3, len(checkpoint) // 10):
        problems.append(f"{len(unused)} tensors in it belong to no layer (first: {unused[0]})")
    if problems:
        raise ModelCorruptError(
            f"{path.name} in {path.parent} does not match its config.yaml: "
            + "; ".join(problems)
            + ". The folder mixes files of different models, or a file is damaged: "
            "download the model again."
        )
    if unused:
        log.warning("Checkpoint tensors not used by the model: %s", ", ".join(unused))


def is_ctc_weight(name: str) -> bool:
    """A tensor of the CTC branch, which dictation never builds (it only gives timestamps).
    Some checkpoints carry it (Fun-ASR-Nano on ModelScope has 86 such tensors), the MLT
    release does not; either way it is neither missing nor unused."""
    return name.startswith(("ctc_decoder.", "ctc."))


def _find(checkpoint: Mapping[str, torch.Tensor], names: list[str]) -> torch.Tensor:
    return next(checkpoint[name] for name in names if name in checkpoint)


@dataclass(frozen=True)
class FloatPlan:
    device: torch.device
    llm_dtype: torch.dtype  # the encoder and adaptor always run in fp32 (funasr requires it)


def _float_dtype(name: str, plan: FloatPlan) -> torch.dtype:
    return plan.llm_dtype if name.startswith(_LLM_PREFIX) else torch.float32


def _place(source: torch.Tensor, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    target = source.to(device=device, dtype=dtype)
    if target.data_ptr() == source.data_ptr():
        # Same dtype and device: ``to`` returned the memory map itself. Copy, so the model
        # never depends on a file that may be replaced while we run.
        target = source.clone()
    _release(source)
    return target


def load_float_weights(
    model: nn.Module,
    checkpoint: Mapping[str, torch.Tensor],
    plan: FloatPlan,
    buffer_names: set[str] | None = None,
) -> None:
    """Fill a meta-parameter model from the checkpoint in the planned dtype and device.

    ``buffer_names`` limits which buffers are taken from the checkpoint (default: all).
    """
    params = dict(model.named_parameters(remove_duplicate=False))
    for names in _parameter_names(model).values():
        source = _find(checkpoint, names)
        placed = nn.Parameter(
            _place(source, _float_dtype(names[0], plan), plan.device), requires_grad=False
        )
        del params[names[0]]
        for name in names:
            parent, child = _parent(model, name)
            parent._parameters[child] = placed
    for name, buffer in list(model.named_buffers()):
        if buffer_names is not None and name not in buffer_names:
            continue
        parent, child = _parent(model, name)
        saved = checkpoint.get(name)
        value = buffer if saved is None else _place(saved, buffer.dtype, plan.device)
        parent._buffers[child] = value.to(plan.device)


# ---------------------------------------------------------------------------- INT8 cache


def _linear_names(model: nn.Module) -> list[str]:
    return [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]


def _input_embedding_name(model: nn.Module) -> str | None:
    llm = getattr(model, "llm", None)
    if llm is None:
        return None
    embedding = llm.get_input_embeddings()
    for name, module in model.named_modules():
        if module is embedding:
            return str(name)
    return None


def build_int8_cache(model: nn.Module, checkpoint: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Quantize a checkpoint for ``model``'s layout into the cache's plain-tensor form.

    Linear weights and the LLM's input embedding become per-row int8 + scale; everything
    else stays fp32. A head tied to the embedding is stored once and shared.
    """
    tensors: dict[str, torch.Tensor] = {}
    tied: dict[str, str] = {}
    groups = _parameter_names(model)
    params = dict(model.named_parameters(remove_duplicate=False))
    quantized_param_ids: dict[int, str] = {}
    matrices = _linear_names(model)
    embedding = _input_embedding_name(model)
    if embedding is not None:
        matrices.insert(0, embedding)
    for module_name in matrices:
        weight = params[f"{module_name}.weight"]
        if id(weight) in quantized_param_ids:
            tied[module_name] = quantized_param_ids[id(weight)]
            continue
        source = _find(checkpoint, groups[id(weight)])
        tensors[f"{module_name}.weight_int8"], tensors[f"{module_name}.weight_scale"] = (
            quantize_rows(source)
        )
        _release(source)
        quantized_param_ids[id(weight)] = module_name
    for param_id, names in groups.items():
        if param_id in quantized_param_ids:
            continue
        source = _find(checkpoint, names)
        tensors[names[0]] = source.detach().float().clone()
        _release(source)
    for name, _ in model.named_buffers():
        if name in checkpoint:
            tensors[name] = checkpoint[name].clone()
    return {"format": CACHE_FORMAT, "tensors": tensors, "tied": tied}


def save_cache(cache: dict[str, Any], path: Path) -> None:
    """Write atomically: a reader never sees half a file, and a mapped old file stays valid."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(handle)
    try:
        torch.save(cache, temporary)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def open_cache(path: Path) -> dict[str, Any] | None:
    """The memory-mapped cache, or None when it is missing, stale or unreadable."""
    if not path.is_file():
        return None
    try:
        cache = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except Exception as error:  # a damaged cache is rebuilt, never fatal
        log.warning("Ignoring unreadable INT8 cache %s: %s", path, error)
        return None
    if not isinstance(cache, dict) or cache.get("format") != CACHE_FORMAT:
        return None
    return cache


def load_int8_weights(
    model: nn.Module,
    cache: Mapping[str, Any],
    device: torch.device,
    activation_dtype: torch.dtype,
    fused: Mapping[str, tuple[str, tuple[str, ...]]] | None = None,
) -> None:
    """Swap in int8 layers from the cache and fill the remaining parameters.

    On the CPU the embedding rows stay memory-mapped: a dictation touches a few hundred of
    the 151,936 rows, so only those pages are ever resident.

    ``fused`` maps a module's name to (fused layer name, the linear layers it replaces):
    their rows are packed as one matrix (``decoder_loop.fusion_groups``), which costs the
    same to pack as the parts and is multiplied in one call.
    """
    tensors: Mapping[str, torch.Tensor] = cache["tensors"]
    tied: Mapping[str, str] = cache["tied"]
    embedding = _input_embedding_name(model)
    original_buffers = {name for name, _ in model.named_buffers()}

    def owner(module_name: str | None) -> str | None:
        return None if module_name is None else tied.get(module_name, module_name)

    def int8_source(module_name: str) -> tuple[torch.Tensor, torch.Tensor]:
        name = owner(module_name)
        try:
            return tensors[f"{name}.weight_int8"], tensors[f"{name}.weight_scale"]
        except KeyError:
            raise StaleCacheError(f"The INT8 cache has no {name}") from None

    def quantized_layer(name: str) -> nn.Module:
        old = model.get_submodule(name)
        assert isinstance(old, nn.Linear)
        if (
            device.type != "cpu"
            and embedding_module is not None
            and owner(name) == owner(embedding)
        ):
            # One copy on the GPU for the tied head and embedding (the CPU head is packed).
            return TiedInt8Head(embedding_module)
        weight_int8, scale = int8_source(name)
        bias_source = tensors.get(f"{name}.bias") if old.bias is not None else None
        if device.type == "cpu":
            # Tied to the embedding or not, pages copied into the packed layer can go; the
            # embedding faults back in the few rows it reads.
            return DynamicInt8Linear.unpacked(
                (old.out_features, old.in_features),
                bias_source is not None,
                lambda: (weight_int8, scale, bias_source),
                after_pack=_release,
            )
        bias = None if bias_source is None else bias_source.to(device, activation_dtype)
        new = WeightOnlyInt8Linear(weight_int8.to(device), scale.to(device), bias)
        _release(weight_int8)
        return new

    def fused_rows(
        names: tuple[str, ...],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        sources = [int8_source(name) for name in names]
        weight_int8 = torch.cat([weight for weight, _ in sources])
        scale = torch.cat([scale for _, scale in sources])
        biases = [tensors.get(f"{name}.bias") for name in names]
        bias = None if biases[0] is None else torch.cat([b for b in biases if b is not None])
        for part, _ in sources:
            _release(part)
        return weight_int8, scale, bias

    def fused_layer(names: tuple[str, ...]) -> nn.Module:
        if device.type == "cpu":
            rows = sum(int(int8_source(name)[0].shape[0]) for name in names)
            columns = int(int8_source(names[0])[0].shape[1])
            has_bias = f"{names[0]}.bias" in tensors
            return DynamicInt8Linear.unpacked((rows, columns), has_bias, lambda: fused_rows(names))
        weight_int8, scale, bias = fused_rows(names)
        placed_bias = None if bias is None else bias.to(device, activation_dtype)
        return WeightOnlyInt8Linear(weight_int8.to(device), scale.to(device), placed_bias)

    fused_parts = {
        f"{module}.{part}": (module, fused_name, parts)
        for module, (fused_name, parts) in (fused or {}).items()
        for part in parts
    }
    embedding_module: Int8Embedding | None = None
    if embedding is not None:
        weight_int8, scale = int8_source(embedding)
        if device.type != "cpu":
            weight_int8, scale = weight_int8.to(device), scale.to(device)
        parent, child = _parent(model, embedding)
        embedding_module = Int8Embedding(weight_int8, scale, activation_dtype)
        setattr(parent, child, embedding_module)
    for name in _linear_names(model):
        group = fused_parts.get(name)
        if group is None:
            parent, child = _parent(model, name)
            setattr(parent, child, quantized_layer(name))
            continue
        module_name, fused_name, parts = group
        parent = model.get_submodule(module_name)
        if hasattr(parent, fused_name):
            continue  # packed with the group's first part
        setattr(parent, fused_name, fused_layer(tuple(f"{module_name}.{p}" for p in parts)))
        for part in parts:
            delattr(parent, part)
    missing = [
        name
        for name, param in model.named_parameters(remove_duplicate=False)
        if param.device.type == "meta" and name not in tensors
    ]
    if missing:
        raise StaleCacheError(f"The INT8 cache has no {missing[0]}")
    float_dtype = torch.float32 if device.type == "cpu" else activation_dtype
    load_float_weights(
        model, tensors, FloatPlan(device=device, llm_dtype=float_dtype), original_buffers
    )
    if device.type == "cpu":
        # FBGEMM prepacking was most of a cached load: it now runs after it (`int8_packing`).
        pack_in_background(unpacked_layers(model))
