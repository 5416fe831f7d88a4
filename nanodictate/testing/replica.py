"""A random-weight replica of Fun-ASR-MLT-Nano-2512, for tests and benchmarks.

The replica is built from funasr's own ``FunASRNano`` class and written in the real model
repository's layout, so it loads through ``funasr.AutoModel`` exactly like the real model::

    OUT_DIR/
      config.yaml            model: FunASRNano (encoder, adaptor, LLM, frontend, tokenizer,
                             and the CTC branch the release declares)
      configuration.json     file_path_metas: model.pt, config.yaml, Qwen3-0.6B
      model.pt               {"state_dict": {audio_encoder.*, audio_adaptor.*, llm.*}}
      multilingual.tiktoken  small tiktoken vocabulary standing in for the CTC one
      Qwen3-0.6B/            config.json, tokenizer.json, tokenizer_config.json, vocab.json,
                             merges.txt
      replica.json           what was built (not in the real repo; funasr ignores it)

Three layouts (:mod:`nanodictate.testing.replica_release`): ``"release"`` (default) as the
release ships it, a wrapped checkpoint without CTC tensors and a config.yaml that declares a
CTC branch anyway; ``"nano"``, Fun-ASR-Nano-2512 as ModelScope ships it, the same with the
CTC branch's tensors in the checkpoint; ``"flat"``, the plain state dict and no CTC entries.

Two sizes:

* tiny (default): the same modules with small dimensions (≈1 MB, loads in a fraction of a
  second) for unit tests.
* ``--full``: the real dimensions (829.8 M parameters, ≈1.9 GB ``model.pt`` because, as in
  the release, the LLM is stored in bf16 and the encoder in fp32) for memory and speed
  benchmarks. Its embedding has the real 151 936 rows even though the tokenizer is small.

The tokenizer (:mod:`nanodictate.testing.replica_tokenizer`) is a byte-level BPE trained
here. It has the Qwen3 special tokens, but none of the real vocabulary, so random weights
decode to gibberish.

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

Command line:
``python -m nanodictate.testing.replica OUT_DIR [--full] [--deterministic] [--layout nano|flat]``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final

import torch
from tokenizers import Tokenizer

from nanodictate.core.asr.funasr_runtime import import_funasr, quiet, without_ctc
from nanodictate.testing.replica_release import (
    FULL_DIMS,
    LAYOUTS,
    LLM_DIR,
    TINY_DIMS,
    Layout,
    ReplicaDims,
    config_yaml,
    configuration_json,
    qwen3_config,
    save_checkpoint,
    write_json,
    write_yaml,
)
from nanodictate.testing.replica_tokenizer import (
    BOS,
    EOS,
    token_id,
    train_tokenizer,
    write_llm_tokenizer,
    write_tiktoken,
)

__all__ = [
    "DETERMINISTIC_TEXT",
    "DETERMINISTIC_TOKENS",
    "FULL_DIMS",
    "FULL_PARAMS",
    "LAYOUTS",
    "LLM_DIR",
    "TINY_DIMS",
    "Layout",
    "ReplicaDims",
    "build_replica",
    "deterministic_text",
    "main",
]

# The sentence a deterministic replica says, split the way the replica's tokenizer splits it
# (checked at build time). One token per piece, then <|im_end|>.
_CHAIN_PIECES: Final = ("This", " is", " the", " nanodictate", " replica", ".")
DETERMINISTIC_TEXT: Final = "".join(_CHAIN_PIECES)
DETERMINISTIC_TOKENS: Final = len(_CHAIN_PIECES)

# Parameter count of the real model (unique tensors, tied embedding counted once; the release
# has no CTC weights, and the replica's model is built without the CTC branch).
FULL_PARAMS: Final = 829_800_000
_FULL_PARAMS_TOLERANCE: Final = 0.005


# --------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------


def _build_model(config: dict[str, Any], llm_dir: Path) -> Any:
    """FunASRNano from funasr's registry, with the keyword arguments AutoModel would give it.

    Built without the CTC branch, as the app builds it (`without_ctc`): the release's
    checkpoint has no CTC weights, so the replica's must not have them either.
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
        model = model_class(**without_ctc(kwargs))
    return model.eval()


def _ctc_branch_state(config: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Random weights for the CTC branch config.yaml declares, named as in a checkpoint that
    ships them (``ctc_decoder.*``, ``ctc.*``), built with funasr's own classes as
    FunASRNano builds them. The replica's model itself never has this branch."""
    with quiet():
        from funasr.models.fun_asr_nano.ctc import CTC
        from funasr.register import tables

        decoder = tables.adaptor_classes[config["ctc_decoder"]](**config["ctc_decoder_conf"])
        encoder_dim = config["audio_encoder_conf"]["output_size"]
        vocab = config.get("ctc_vocab_size", FULL_DIMS.ctc_vocab)
        ctc = CTC(odim=vocab, encoder_output_size=encoder_dim, blank_id=vocab - 1)
    branch = {f"ctc_decoder.{name}": t for name, t in decoder.state_dict().items()}
    return branch | {f"ctc.{name}": t for name, t in ctc.state_dict().items()}


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
    out_dir: Path,
    *,
    full: bool = False,
    deterministic: bool = False,
    seed: int = 0,
    layout: Layout = "release",
) -> Path:
    """Write a replica into ``out_dir`` (created; existing replica files are overwritten).

    ``full`` selects the real dimensions (2.1 GB, ≈20 s and ≈3 GB of RAM on 2 cores; the
    parameter count is checked against the real 829.8 M), else tiny ones (0.8 MB, ≈5 s of
    which 4.5 s is importing funasr). ``deterministic`` makes it always say
    :data:`DETERMINISTIC_TEXT`. ``seed`` seeds the random weights. ``layout`` is
    ``"release"`` (wrapped checkpoint, CTC branch declared but absent), ``"nano"``
    (Fun-ASR-Nano-2512: the same with the CTC tensors present) or ``"flat"`` (plain state
    dict, no CTC entries): see :mod:`nanodictate.testing.replica_release`.
    Returns ``out_dir``.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
    out_dir = Path(out_dir)
    llm_dir = out_dir / LLM_DIR
    llm_dir.mkdir(parents=True, exist_ok=True)
    dims = FULL_DIMS if full else TINY_DIMS

    tokenizer = train_tokenizer(DETERMINISTIC_TEXT)
    write_llm_tokenizer(tokenizer, llm_dir)
    vocab_used = tokenizer.get_vocab_size(with_added_tokens=True)
    vocab_size = dims.llm_vocab or vocab_used
    if vocab_size < vocab_used:
        raise ValueError(f"LLM vocabulary {vocab_size} < tokenizer's {vocab_used}")
    write_json(
        llm_dir / "config.json",
        qwen3_config(dims, vocab_size, token_id(tokenizer, BOS), token_id(tokenizer, EOS)),
    )
    write_tiktoken(tokenizer, out_dir / "multilingual.tiktoken")

    config = config_yaml(dims, layout)
    write_yaml(out_dir / "config.yaml", config)
    write_json(out_dir / "configuration.json", configuration_json())

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
    state = model.state_dict()
    ctc_tensors = _ctc_branch_state(config) if layout == "nano" else {}
    save_checkpoint(state | ctc_tensors, out_dir / "model.pt", layout)

    write_json(
        out_dir / "replica.json",
        {
            "full": full,
            "deterministic": deterministic,
            "seed": seed,
            "layout": layout,
            "dims": asdict(dims) | {"llm_vocab": vocab_size},
            "tokenizer_vocab": vocab_used,
            "params": split | {"total": total},
            "ctc_tensors": len(ctc_tensors),
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
    ids = [*encoding.ids, token_id(tokenizer, EOS)]
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
    parser.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="release",
        help="release: wrapped model.pt, CTC declared but absent (default); "
        "nano: Fun-ASR-Nano-2512, the same with the CTC tensors present; "
        "flat: plain state dict, no CTC entries",
    )
    args = parser.parse_args(argv)

    # Everything is local; make sure transformers never tries a hub on a slow network.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    out_dir = build_replica(
        args.out_dir,
        full=args.full,
        deterministic=args.deterministic,
        seed=args.seed,
        layout=args.layout,
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
