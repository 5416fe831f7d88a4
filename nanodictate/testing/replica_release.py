"""The files of a replica's model folder, in the release's form or the older flat one.

The release of Fun-ASR-MLT-Nano-2512 (layout ``"release"``, the default):

* ``model.pt`` wraps the weights, ``{"state_dict": {...}}``, and holds no CTC tensors;
* ``config.yaml`` nevertheless declares a CTC branch: ``ctc_decoder: Transformer`` with
  ``ctc_decoder_conf``, ``detach_ctc_decoder``, ``ctc_conf``, and under ``dataset_conf`` a
  ``ctc_tokenizer: SenseVoiceTokenizer`` whose ``vocab_path`` is empty. funasr 1.4.16 builds
  that branch (a 512 × 60515 output layer and a tiktoken tokenizer) and drops it after
  loading because its weights are missing;
* ``configuration.json``'s ``file_path_metas`` name the checkpoint, config.yaml and the
  Qwen3-0.6B folder (for the LLM and its tokenizer): the only keys funasr reads there.

Fun-ASR-Nano-2512 (layout ``"nano"``): the release layout with the CTC branch's tensors
**present** in ``model.pt``, as the ModelScope checkpoint ships them (86 ``ctc_decoder.*`` and
``ctc.*`` tensors at full size). MODEL-NOTES lists no other difference in its files.

The flat layout (``"flat"``), which earlier replicas used: ``model.pt`` is the plain state
dict and config.yaml has no CTC entries. All three must load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, get_args

import torch
import yaml

__all__ = [
    "FULL_DIMS",
    "LAYOUTS",
    "LLM_DIR",
    "TINY_DIMS",
    "Layout",
    "ReplicaDims",
    "config_yaml",
    "configuration_json",
    "qwen3_config",
    "save_checkpoint",
    "write_json",
    "write_yaml",
]

LLM_DIR: Final = "Qwen3-0.6B"

Layout = Literal["release", "nano", "flat"]
LAYOUTS: Final[tuple[Layout, ...]] = get_args(Layout)


@dataclass(frozen=True)
class ReplicaDims:
    """Module sizes. ``llm_vocab=None`` means "as many rows as the tokenizer has ids"."""

    encoder_dim: int
    encoder_heads: int
    encoder_ffn: int
    encoder_blocks: int
    encoder_tp_blocks: int
    encoder_kernel: int
    adaptor_ffn: int
    adaptor_layers: int
    llm_hidden: int
    llm_layers: int
    llm_heads: int
    llm_kv_heads: int
    llm_head_dim: int
    llm_ffn: int
    llm_vocab: int | None
    # The CTC decoder config.yaml declares (release and nano layouts; its tensors are in
    # model.pt only in the nano one). Its width is the encoder's: funasr sizes the CTC output
    # layer (encoder width × ctc_vocab) from the encoder output.
    ctc_ffn: int
    ctc_layers: int
    ctc_vocab: int


# The release states no CTC vocabulary size and funasr defaults to the real one.
_RELEASE_CTC_VOCAB: Final = 60_515


FULL_DIMS: Final = ReplicaDims(
    encoder_dim=512,
    encoder_heads=4,
    encoder_ffn=2048,
    encoder_blocks=50,
    encoder_tp_blocks=20,
    encoder_kernel=11,
    adaptor_ffn=2048,
    adaptor_layers=2,
    llm_hidden=1024,
    llm_layers=28,
    llm_heads=16,
    llm_kv_heads=8,
    llm_head_dim=128,
    llm_ffn=3072,
    llm_vocab=151_936,
    ctc_ffn=2048,
    ctc_layers=5,
    ctc_vocab=_RELEASE_CTC_VOCAB,
)

TINY_DIMS: Final = ReplicaDims(
    encoder_dim=32,
    encoder_heads=4,
    encoder_ffn=64,
    encoder_blocks=2,
    encoder_tp_blocks=1,
    encoder_kernel=11,
    adaptor_ffn=64,
    adaptor_layers=2,
    llm_hidden=64,
    llm_layers=2,
    llm_heads=4,
    llm_kv_heads=2,
    llm_head_dim=16,
    llm_ffn=128,
    llm_vocab=None,
    ctc_ffn=64,
    ctc_layers=2,
    ctc_vocab=64,
)


def config_yaml(dims: ReplicaDims, layout: Layout) -> dict[str, Any]:
    """config.yaml as in the release (nano: the same); the flat layout leaves the CTC entries
    out."""
    config: dict[str, Any] = {
        "model": "FunASRNano",
        "model_conf": {"lsm_weight": 0.1, "length_normalized_loss": True},
        "audio_encoder": "SenseVoiceEncoderSmall",
        "audio_encoder_conf": {
            "output_size": dims.encoder_dim,
            "attention_heads": dims.encoder_heads,
            "linear_units": dims.encoder_ffn,
            "num_blocks": dims.encoder_blocks,
            "tp_blocks": dims.encoder_tp_blocks,
            "dropout_rate": 0.1,
            "positional_dropout_rate": 0.1,
            "attention_dropout_rate": 0.1,
            "input_layer": "pe",
            "pos_enc_class": "SinusoidalPositionEncoder",
            "normalize_before": True,
            "kernel_size": dims.encoder_kernel,
            "sanm_shfit": 0,
            "selfattention_layer_type": "sanm",
            "freeze": True,
            "freeze_layer_num": -1,
            "feat_permute": True,
        },
        "llm": "Qwen3-0.6b",
        "llm_conf": {
            "hub": "hf",
            "freeze": True,
            # As in the release. The LLM is built in bf16 and model.pt stores it so; at
            # generate() funasr casts it to the llm_dtype argument (default fp32), so bf16
            # here works on CPU.
            "llm_dtype": "bf16",
            "init_param_path": LLM_DIR,
            "use_lora": False,
        },
        "audio_adaptor": "Transformer",
        "audio_adaptor_conf": {
            "downsample_rate": 1,
            # As in the release: only the first ≈1/8 of the adaptor frames reach the LLM.
            "use_low_frame_rate": True,
            "ffn_dim": dims.adaptor_ffn,
            "llm_dim": dims.llm_hidden,
            "encoder_dim": dims.encoder_dim,
            "n_layer": dims.adaptor_layers,
            "freeze": True,
        },
    }
    if layout != "flat":
        config |= _ctc_entries(dims)
    config |= {
        "frontend": "WavFrontend",
        "frontend_conf": {
            "fs": 16000,
            "window": "hamming",
            "n_mels": 80,
            "frame_length": 25,
            "frame_shift": 10,
            "lfr_m": 7,
            "lfr_n": 6,
            "cmvn_file": None,
        },
        "tokenizer": "HuggingfaceTokenizer",
        "tokenizer_conf": {"init_param_path": LLM_DIR},
    }
    if layout != "flat":
        config["dataset_conf"] = {
            "ctc_tokenizer": "SenseVoiceTokenizer",
            "ctc_target_normalize": True,
            # Empty, as in the release: funasr then looks inside its own package.
            "ctc_tokenizer_conf": {
                "vocab_path": None,
                "is_multilingual": True,
                "num_languages": 8749,
            },
        }
    return config


def _ctc_entries(dims: ReplicaDims) -> dict[str, Any]:
    """The CTC branch the release declares (real values at full size, scaled when tiny)."""
    return {
        "ctc_decoder": "Transformer",
        "detach_ctc_decoder": True,
        "ctc_decoder_conf": {
            "downsample_rate": 1,
            "ffn_dim": dims.ctc_ffn,
            "llm_dim": dims.encoder_dim,
            "encoder_dim": dims.encoder_dim,
            "n_layer": dims.ctc_layers,
        },
        "ctc_conf": {
            "dropout_rate": 0.0,
            "ctc_type": "builtin",
            "reduce": True,
            "ignore_nan_grad": True,
        },
    } | _ctc_vocab_entry(dims)


def _ctc_vocab_entry(dims: ReplicaDims) -> dict[str, int]:
    """``ctc_vocab_size`` where it differs from funasr's default (tiny replicas), so that the
    CTC output layer funasr builds matches the nano layout's tensors and stays tiny."""
    return {} if dims.ctc_vocab == _RELEASE_CTC_VOCAB else {"ctc_vocab_size": dims.ctc_vocab}


def configuration_json() -> dict[str, Any]:
    """The same in every layout: funasr reads only ``file_path_metas`` here.

    Without this file AutoModel tries to reach a hub; funasr's download_from_ms joins each
    relative path to the folder and lets it override config.yaml's entry of the same key.
    """
    return {
        "framework": "pytorch",
        "task": "auto-speech-recognition",
        "model": {"type": "funasr"},
        "file_path_metas": {
            "init_param": "model.pt",
            "config": "config.yaml",
            "tokenizer_conf": {"init_param_path": LLM_DIR},
            "llm_conf": {"init_param_path": LLM_DIR},
        },
    }


def qwen3_config(dims: ReplicaDims, vocab_size: int, bos_id: int, eos_id: int) -> dict[str, Any]:
    """Qwen3-0.6B's config.json with the replica's sizes and special-token ids."""
    return {
        "architectures": ["Qwen3ForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": bos_id,
        "eos_token_id": eos_id,
        "head_dim": dims.llm_head_dim,
        "hidden_act": "silu",
        "hidden_size": dims.llm_hidden,
        "initializer_range": 0.02,
        "intermediate_size": dims.llm_ffn,
        "max_position_embeddings": 40960,
        "max_window_layers": dims.llm_layers,
        "model_type": "qwen3",
        "num_attention_heads": dims.llm_heads,
        "num_hidden_layers": dims.llm_layers,
        "num_key_value_heads": dims.llm_kv_heads,
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": 1000000,
        "sliding_window": None,
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.51.0",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": vocab_size,
    }


def save_checkpoint(state: dict[str, torch.Tensor], path: Path, layout: Layout) -> None:
    """model.pt: wrapped as ``{"state_dict": ...}`` like the releases, or the plain dict."""
    torch.save(state if layout == "flat" else {"state_dict": state}, path)


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_yaml(path: Path, data: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
