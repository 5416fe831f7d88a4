"""The replica's tokenizers: a small byte-level BPE in Qwen3's shape, and its tiktoken twin.

The BPE is trained here on a small built-in multilingual text, so it encodes any UTF-8
(Chinese prompts included). It has Qwen3's special tokens but none of its real vocabulary.
It is written as Qwen3-0.6B's tokenizer files (tokenizer.json, vocab.json, merges.txt,
tokenizer_config.json), and its byte-level tokens as ``multilingual.tiktoken``, the file
that stands for the release's CTC vocabulary.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any, Final

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

__all__ = ["BOS", "EOS", "token_id", "train_tokenizer", "write_llm_tokenizer", "write_tiktoken"]

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
EOS: Final = "<|im_end|>"
BOS: Final = "<|endoftext|>"  # Qwen3's config.json calls <|endoftext|> bos and uses it as pad

_BPE_MERGES: Final = 600

# Training text: the prompts funasr builds (with every language name MLT-Nano knows), a little
# of many scripts, and (see train_tokenizer) one sentence often enough to become whole words.
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
_SENTENCE_REPEATS: Final = 200


def train_tokenizer(sentence: str) -> Tokenizer:
    """A byte-level BPE with Qwen's pre-tokenizer; added tokens get the ids after the BPE's.

    ``sentence`` is repeated in the training text so that its words become single tokens.
    """
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
    corpus = [*_CORPUS.splitlines(), *([sentence] * _SENTENCE_REPEATS)]
    tokenizer.train_from_iterator(corpus, trainer)
    tokenizer.add_tokens(
        [
            AddedToken(content, special=special, normalized=False)
            for content, special in _ADDED_TOKENS
        ]
    )
    return tokenizer


def token_id(tokenizer: Tokenizer, token: str) -> int:
    found = tokenizer.token_to_id(token)
    if found is None:
        raise KeyError(f"{token!r} is not in the replica tokenizer")
    return found


def write_llm_tokenizer(tokenizer: Tokenizer, llm_dir: Path) -> None:
    """Qwen3-0.6B's tokenizer files: tokenizer.json, vocab.json, merges.txt and the config."""
    tokenizer.save(str(llm_dir / "tokenizer.json"))
    tokenizer.model.save(str(llm_dir))  # vocab.json + merges.txt
    (llm_dir / "tokenizer_config.json").write_text(
        json.dumps(_tokenizer_config(tokenizer), indent=2, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )


def _tokenizer_config(tokenizer: Tokenizer) -> dict[str, Any]:
    """tokenizer_config.json in the shape of Qwen3-0.6B's (transformers reads it offline)."""
    decoder = {
        str(token_id(tokenizer, content)): {
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
        "eos_token": EOS,
        "errors": "replace",
        "model_max_length": 131072,
        "pad_token": BOS,
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }


def write_tiktoken(tokenizer: Tokenizer, path: Path) -> None:
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
