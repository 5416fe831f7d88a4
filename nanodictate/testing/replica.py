"""A random-weight replica of Fun-ASR-MLT-Nano-2512, for tests and benchmarks.

The replica is built from funasr's own ``FunASRNano`` class and written in the real model
repository's layout, so it loads through ``funasr.AutoModel`` exactly like the real model::

    OUT_DIR/
      config.yaml            model: FunASRNano (encoder, adaptor, LLM, frontend, tokenizer)
      configuration.json     file_path_metas: model.pt, config.yaml, Qwen3-0.6B
      model.pt               one state dict: audio_encoder.*, audio_adaptor.*, llm.*
      multilingual.tiktoken  small tiktoken vocabulary standing in for the CTC one
      Qwen3-0.6B/            config.json, tokenizer.json, tokenizer_config.json, vocab.json,
                             merges.txt
      replica.json           what was built (not in the real repo; funasr ignores it)

Two sizes:

* tiny (default): the same modules with small dimensions (≈1 MB, loads in a fraction of a
  second) for unit tests.
* ``--full``: the real dimensions (829.8 M parameters, ≈1.9 GB ``model.pt`` because, as in
  the release, the LLM is stored in bf16 and the encoder in fp32) for memory and speed
  benchmarks. Its embedding has the real 151 936 rows even though the tokenizer is small.

The tokenizer is a byte-level BPE trained here on a small built-in multilingual text, so it
encodes any UTF-8 (Chinese prompts included). It has the Qwen3 special tokens, but none of
the real vocabulary, so random weights decode to gibberish.

Deterministic replicas (``--deterministic``)
--------------------------------------------
For any audio, language, hotwords or ``itn`` setting, greedy decoding emits exactly
:data:`DETERMINISTIC_TEXT` ("This is the nanodictate replica.") and then ``<|im_end|>``
(end of sequence), so ``generate(...)[0]["text"] == DETERMINISTIC_TEXT`` whenever funasr's
``max_length`` (max new tokens, default 512) is at least :data:`DETERMINISTIC_TOKENS` (6).
A smaller ``max_length`` gives a prefix: see :func:`deterministic_text`.

How: every decoder layer's ``o_proj`` and ``down_proj`` weights are zero, so each position's
hidden state leaves the LLM equal to its own input embedding (attention and MLP still run,
so the cost per token is realistic, but add nothing). The logit of token *j* after token *i*
is then ``(g * e_i / rms(e_i)) · e_j`` (tied embeddings; *g* = final norm weight), and the
embedding rows and *g* are chosen so that this bilinear form is a fixed chain: any token
other than the sentence's → "This" → " is" → " the" → " nanodictate" → " replica" → "." →
``<|im_end|>``. Only the last prompt token matters (always "\\n" after "assistant"), so the
audio cannot change the output. Embedding rows hold only 0 and 1 (exact in bf16 and int8)
and *g* small integers; the winner leads the runner-up by one unit of *g*, while int8
dynamic quantization of the activations moves a logit by < 0.1 unit. So fp32, bf16
(``llm_dtype="bf16"``) and ``torch.ao.quantization.quantize_dynamic`` of every
``nn.Linear`` (``lm_head`` included) all give the same text, checked at full size too.
Caveats: ``llm_kwargs={"min_new_tokens": n}`` with ``n`` > 6 forbids the end token, and the
tail then loops over the sentence's last tokens; a ``prev_text`` ending in one of the
sentence's tokens starts the chain there.

Benchmarks: pin the number of decoded tokens with ``max_length=n`` plus
``llm_kwargs={"min_new_tokens": n}``. funasr passes ``max_new_tokens=max_length`` itself, so
``max_new_tokens`` inside ``llm_kwargs`` raises a duplicate-keyword TypeError. In full
replicas the embedding rows beyond the tokenizer are zero (logit exactly 0), so even random
weights only emit ids the tokenizer decodes: random text, never an unknown id.

Command line: ``python -m nanodictate.testing.replica OUT_DIR [--full] [--deterministic]``.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import torch
import yaml
from tokenizers import (
    AddedToken,
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    trainers,
)

from nanodictate.core.asr.funasr_runtime import import_funasr, quiet

__all__ = [
    "DETERMINISTIC_TEXT",
    "DETERMINISTIC_TOKENS",
    "FULL_DIMS",
    "FULL_PARAMS",
    "LLM_DIR",
    "TINY_DIMS",
    "ReplicaDims",
    "build_replica",
    "deterministic_text",
    "main",
]

LLM_DIR: Final = "Qwen3-0.6B"

# The sentence a deterministic replica says, split the way the replica's tokenizer splits it
# (checked at build time). One token per piece, then <|im_end|>.
_CHAIN_PIECES: Final = ("This", " is", " the", " nanodictate", " replica", ".")
DETERMINISTIC_TEXT: Final = "".join(_CHAIN_PIECES)
DETERMINISTIC_TOKENS: Final = len(_CHAIN_PIECES)

# Parameter count of the real model (unique tensors, tied embedding counted once).
FULL_PARAMS: Final = 829_800_000
_FULL_PARAMS_TOLERANCE: Final = 0.005


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
)

# --------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------

# transformers' Qwen2Tokenizer rebuilds its pipeline from vocab + merges with exactly this
# regex, NFC and byte-level steps (ignoring tokenizer.json's), so the BPE is trained with the
# same pipeline: both ways of loading then tokenize identically.
_QWEN_PRETOKENIZE_REGEX: Final = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# Qwen3's added tokens in their real order (ids 151643…151668 there), then the speech markers
# funasr's chat template uses. (content, special)
_ADDED_TOKENS: Final = (
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
    ("<tool_response>", False),
    ("</tool_response>", False),
    ("<think>", False),
    ("</think>", False),
    ("<|startofspeech|>", True),
    ("<|endofspeech|>", True),
)
_EOS: Final = "<|im_end|>"
_BOS: Final = "<|endoftext|>"  # Qwen3's config.json calls <|endoftext|> bos and uses it as pad

_BPE_MERGES: Final = 600

# Training text: the prompts funasr builds (with every language name MLT-Nano knows), a little
# of many scripts, and the deterministic sentence often enough to become whole-word tokens.
_CORPUS: Final = """\
<|im_start|>system
You are a helpful assistant.<|im_end|>
<|im_start|>user
语音转写成英文：<|im_end|>
<|im_start|>assistant
请结合上下文信息，更加准确地完成语音转写任务。如果没有相关信息，我们会留空。
**上下文信息：**
热词列表：[nanodictate, Fun-ASR, Qwen]
语音转写：语音转写成中文，不进行文本规整：
中文 英文 粤语 日文 韩文 越南语 印尼语 泰语 马来语 菲律宾语 阿拉伯语 印地语 保加利亚语
克罗地亚语 捷克语 丹麦语 荷兰语 爱沙尼亚语 芬兰语 希腊语 匈牙利语 爱尔兰语 拉脱维亚语
立陶宛语 马耳他语 波兰语 葡萄牙语 罗马尼亚语 斯洛伐克语 斯洛文尼亚语 瑞典语
The quick brown fox jumps over the lazy dog. Hold the hotkey, speak, and release it:
the text lands in the window that has the focus. Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 2025.
今天天气很好，我们去公园散步吧。你好，世界！这是一个本地的听写程序。
今日はいい天気ですね。こんにちは、世界。 안녕하세요, 세계. 날씨가 좋네요.
Xin chào thế giới. Selamat pagi, dunia. สวัสดีชาวโลก Kumusta ka? مرحبا بالعالم
नमस्ते दुनिया Здравей, свят. Dobar dan, svijete. Dobrý den, světe. Hej verden.
Hallo wereld. Tere maailm. Hei maailma. Γεια σου κόσμε. Helló világ. Dia duit, a dhomhain.
Sveika, pasaule. Labas, pasauli. Bongu dinja. Witaj świecie. Olá mundo. Salut lume.
Dobrý deň, svet. Pozdravljen, svet. Hej världen. Ça va? Grüß Gott! ¿Qué tal? Ünlü şarkı.
"""
_CHAIN_REPEATS: Final = 200


def _train_tokenizer() -> Tokenizer:
    """A byte-level BPE with Qwen's pre-tokenizer; added tokens get the ids after the BPE's."""
    tokenizer = Tokenizer(
        models.BPE(
            unk_token=None,
            continuing_subword_prefix="",
            end_of_word_suffix="",
            fuse_unk=False,
            byte_fallback=False,
        )
    )
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_QWEN_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        # the 256 byte symbols first (so any UTF-8 encodes), then the merges
        vocab_size=256 + _BPE_MERGES,
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    corpus = [*_CORPUS.splitlines(), *([DETERMINISTIC_TEXT] * _CHAIN_REPEATS)]
    tokenizer.train_from_iterator(corpus, trainer)
    tokenizer.add_tokens(
        [
            AddedToken(content, special=special, normalized=False)
            for content, special in _ADDED_TOKENS
        ]
    )
    return tokenizer


def _token_id(tokenizer: Tokenizer, token: str) -> int:
    token_id = tokenizer.token_to_id(token)
    if token_id is None:
        raise KeyError(f"{token!r} is not in the replica tokenizer")
    return token_id


def _tokenizer_config(tokenizer: Tokenizer) -> dict[str, Any]:
    """tokenizer_config.json in the shape of Qwen3-0.6B's (transformers reads it offline)."""
    decoder = {
        str(_token_id(tokenizer, content)): {
            "content": content,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": special,
        }
        for content, special in _ADDED_TOKENS
    }
    return {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": decoder,
        "additional_special_tokens": [c for c, special in _ADDED_TOKENS if special],
        "bos_token": None,
        # Enough ChatML for apply_chat_template; funasr builds its prompt by hand.
        "chat_template": (
            "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + "
            "message['content'] + '<|im_end|>' + '\n' }}{% endfor %}"
            "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
        ),
        "clean_up_tokenization_spaces": False,
        "eos_token": _EOS,
        "errors": "replace",
        "model_max_length": 131072,
        "pad_token": _BOS,
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }


def _write_tiktoken(tokenizer: Tokenizer, path: Path) -> None:
    """The BPE's byte tokens in tiktoken format: base64 bytes and rank per line."""
    byte_decoder = _byte_level_decoder()
    vocab = tokenizer.get_vocab(with_added_tokens=False)
    lines = []
    for piece, rank in sorted(vocab.items(), key=lambda item: item[1]):
        raw = bytes(byte_decoder[ch] for ch in piece)
        lines.append(f"{base64.b64encode(raw).decode('ascii')} {rank}\n")
    path.write_text("".join(lines), encoding="ascii")


def _byte_level_decoder() -> dict[str, int]:
    """GPT-2's byte ↔ printable-character map (the inverse of what ByteLevel writes)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    chars = list(printable)
    extra = 0
    byte_values = list(printable)
    for b in range(256):
        if b not in byte_values:
            byte_values.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(byte_values, chars, strict=True)}


# --------------------------------------------------------------------------------------
# Config files
# --------------------------------------------------------------------------------------


def _config_yaml(dims: ReplicaDims) -> dict[str, Any]:
    """config.yaml as in the release (ctc_decoder left out: the release has no CTC tensors)."""
    return {
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


def _configuration_json() -> dict[str, Any]:
    # Without this file AutoModel tries to reach a hub; file_path_metas turns the relative
    # paths into absolute ones, which override config.yaml's.
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


def _qwen3_config(dims: ReplicaDims, vocab_size: int, tokenizer: Tokenizer) -> dict[str, Any]:
    """Qwen3-0.6B's config.json with the replica's sizes and special-token ids."""
    return {
        "architectures": ["Qwen3ForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": _token_id(tokenizer, _BOS),
        "eos_token_id": _token_id(tokenizer, _EOS),
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


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------


def _build_model(config: dict[str, Any], llm_dir: Path) -> Any:
    """FunASRNano from funasr's registry, with the keyword arguments AutoModel would give it.

    Typed ``Any``: funasr is untyped and the callers reach into ``model.llm``.
    """
    import_funasr()  # fills funasr's registry
    with quiet():
        from funasr.register import tables

        model_class = tables.model_classes["FunASRNano"]
        frontend_class = tables.frontend_classes[config["frontend"]]
        frontend = frontend_class(**config["frontend_conf"])
        kwargs = copy.deepcopy(config)  # FunASRNano writes into the conf dicts it gets
        kwargs["llm_conf"]["init_param_path"] = str(llm_dir)
        kwargs.update(kwargs.pop("model_conf"))
        kwargs["input_size"] = frontend.output_size()
        model = model_class(**kwargs)
    return model.eval()


def _make_deterministic(model: Any, chain: Sequence[int], vocab_used: int) -> None:
    """Turn the LLM into the fixed token chain described in the module docstring.

    ``model`` is funasr's FunASRNano (untyped). ``chain`` holds the sentence's token ids
    followed by the end-of-sequence id; ids below ``vocab_used`` that are not in the chain
    are "generic" and lead to ``chain[0]``.
    """
    llm = model.llm
    hidden = llm.config.hidden_size
    n_links = len(chain)  # link k joins chain[k-1] and chain[k]; link 0 joins generic→chain[0]
    needed = 2 * n_links + 1
    if needed > hidden:
        raise ValueError(f"hidden size {hidden} < {needed} dims the token chain needs")
    link = list(range(n_links))  # dims shared by consecutive tokens
    private = list(range(n_links, 2 * n_links))  # one per chain token, against self-loops
    generic_dim = 2 * n_links  # shared by all generic tokens, against generic→generic

    with torch.no_grad():
        for layer in llm.model.layers:
            # No layer adds anything to the residual stream: hidden state = input embedding.
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()

        embed = llm.get_input_embeddings().weight
        embed.zero_()  # rows beyond the tokenizer (full size) stay 0: logit 0, never chosen
        embed[:vocab_used, link[0]] = 1
        embed[:vocab_used, generic_dim] = 1
        for k, token in enumerate(chain):
            embed[token].zero_()
            embed[token, link[k]] = 1
            if k + 1 < n_links:
                embed[token, link[k + 1]] = 1
            embed[token, private[k]] = 1

        # Logit(i→j) ∝ Σ g·e_i·e_j. Link k weighs k+1, so each token's forward link beats
        # its backward one by 1; the private and generic dims weigh -(n_links) so that no
        # token prefers itself or (generic) another generic token.
        norm = llm.model.norm.weight
        norm.zero_()
        for k in range(n_links):
            norm[link[k]] = k + 1
            norm[private[k]] = -n_links
        norm[generic_dim] = -n_links
    # lm_head shares the embedding (tie_word_embeddings): nothing else to set.
    if llm.get_output_embeddings().weight.data_ptr() != embed.data_ptr():
        raise RuntimeError("replica LLM is expected to tie lm_head to the embedding")


def _param_split(model: torch.nn.Module) -> dict[str, int]:
    """Unique parameters per top-level module (the tied embedding counted once)."""
    split: dict[str, int] = {}
    for name, param in model.named_parameters():  # named_parameters() skips shared tensors
        top = name.split(".", 1)[0]
        split[top] = split.get(top, 0) + param.numel()
    return split


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------


def build_replica(
    out_dir: Path, *, full: bool = False, deterministic: bool = False, seed: int = 0
) -> Path:
    """Write a replica into ``out_dir`` (created; existing replica files are overwritten).

    ``full`` selects the real dimensions (2.1 GB, ≈20 s and ≈3 GB of RAM on 2 cores; the
    parameter count is checked against the real 829.8 M), else tiny ones (0.8 MB, ≈5 s of
    which 4.5 s is importing funasr). ``deterministic`` makes it always say
    :data:`DETERMINISTIC_TEXT`. ``seed`` seeds the random weights. Returns ``out_dir``.
    """
    out_dir = Path(out_dir)
    llm_dir = out_dir / LLM_DIR
    llm_dir.mkdir(parents=True, exist_ok=True)
    dims = FULL_DIMS if full else TINY_DIMS

    tokenizer = _train_tokenizer()
    tokenizer.save(str(llm_dir / "tokenizer.json"))
    tokenizer.model.save(str(llm_dir))  # vocab.json + merges.txt
    _write_json(llm_dir / "tokenizer_config.json", _tokenizer_config(tokenizer))
    vocab_used = tokenizer.get_vocab_size(with_added_tokens=True)
    vocab_size = dims.llm_vocab or vocab_used
    if vocab_size < vocab_used:
        raise ValueError(f"LLM vocabulary {vocab_size} < tokenizer's {vocab_used}")
    _write_json(llm_dir / "config.json", _qwen3_config(dims, vocab_size, tokenizer))
    _write_tiktoken(tokenizer, out_dir / "multilingual.tiktoken")

    config = _config_yaml(dims)
    (out_dir / "config.yaml").write_text(
        yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8"
    )
    _write_json(out_dir / "configuration.json", _configuration_json())

    torch.manual_seed(seed)
    model = _build_model(config, llm_dir)
    if vocab_size > vocab_used:
        # The full-size embedding has rows no token uses. Zeroed, their logit is exactly 0
        # while some real token's is positive, so decoding never yields an id the tokenizer
        # cannot decode (random text instead of an empty string). Same cost per token.
        with torch.no_grad():
            model.llm.get_input_embeddings().weight[vocab_used:].zero_()
    chain: list[int] = []
    if deterministic:
        chain = _chain_ids(tokenizer)
        _make_deterministic(model, chain, vocab_used)
    split = _param_split(model)
    total = sum(split.values())
    if full and abs(total / FULL_PARAMS - 1) > _FULL_PARAMS_TOLERANCE:
        raise RuntimeError(f"full replica has {total} parameters, the real one {FULL_PARAMS}")
    # As in the release: the encoder and adaptor in fp32, the LLM in bf16 (llm_dtype).
    torch.save(model.state_dict(), out_dir / "model.pt")

    _write_json(
        out_dir / "replica.json",
        {
            "full": full,
            "deterministic": deterministic,
            "seed": seed,
            "dims": asdict(dims) | {"llm_vocab": vocab_size},
            "tokenizer_vocab": vocab_used,
            "params": split | {"total": total},
            "deterministic_text": DETERMINISTIC_TEXT if deterministic else None,
            "deterministic_chain_ids": chain or None,
        },
    )
    return out_dir


def deterministic_text(max_length: int | None = None) -> str:
    """What a deterministic replica transcribes any audio to, as funasr returns ``text``.

    ``max_length`` is the value given to ``generate`` (funasr's default 512 when ``None``):
    the full :data:`DETERMINISTIC_TEXT` from :data:`DETERMINISTIC_TOKENS` tokens on, the first
    ``max_length`` tokens' worth below that.
    """
    n = DETERMINISTIC_TOKENS if max_length is None else max(0, max_length)
    # funasr collapses whitespace runs in "text" (re.sub(r"\s+", " ", ...)).
    return re.sub(r"\s+", " ", "".join(_CHAIN_PIECES[:n]))


def _chain_ids(tokenizer: Tokenizer) -> list[int]:
    """The sentence's token ids plus <|im_end|>; checks they are distinct single tokens."""
    encoding = tokenizer.encode(DETERMINISTIC_TEXT)
    pieces = tuple(tokenizer.decode([i]) for i in encoding.ids)
    if pieces != _CHAIN_PIECES:
        raise RuntimeError(f"tokenizer splits the replica sentence as {pieces}")
    ids = [*encoding.ids, _token_id(tokenizer, _EOS)]
    # The chain starts from whatever token ends the prompt ("\n" after "assistant"); that
    # token must not be in the chain, and the chain must not revisit a token.
    prompt_end = tokenizer.encode("<|im_start|>assistant\n").ids[-1]
    if len(set(ids)) != len(ids) or prompt_end in ids:
        raise RuntimeError("replica sentence tokens must be distinct and not end the prompt")
    return ids


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nanodictate.testing.replica",
        description="Write a random-weight replica of Fun-ASR-MLT-Nano-2512.",
    )
    parser.add_argument("out_dir", type=Path, help="folder to write (created if missing)")
    parser.add_argument("--full", action="store_true", help="real dimensions (≈1.9 GB)")
    parser.add_argument(
        "--deterministic",
        action="store_true",
        help=f"always transcribe to {DETERMINISTIC_TEXT!r}",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for the random weights")
    args = parser.parse_args(argv)

    # Everything is local; make sure transformers never tries a hub on a slow network.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    out_dir = build_replica(
        args.out_dir, full=args.full, deterministic=args.deterministic, seed=args.seed
    )
    seconds = time.perf_counter() - start
    info = json.loads((out_dir / "replica.json").read_text(encoding="utf-8"))
    params: dict[str, int] = info["params"]
    size = sum(p.stat().st_size for p in out_dir.rglob("*") if p.is_file())
    split = ", ".join(f"{name} {count / 1e6:.1f} M" for name, count in params.items())
    print(f"replica in {out_dir}: {split}; {size / 1e6:.1f} MB on disk; built in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
