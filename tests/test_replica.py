"""The Fun-ASR-MLT-Nano replica loads through funasr like the real model and, when
deterministic, says exactly DETERMINISTIC_TEXT whatever it hears.

Here the replica goes through plain ``funasr.AutoModel`` (the app's own loading, which builds
no CTC branch, is in tests/test_release_layout.py). Like the release, the replica's config.yaml
declares a CTC branch whose tokenizer has no vocabulary path; plain funasr 1.4.16 then looks
for the vocabulary inside its own package and fails, so these loads name the folder's
``multilingual.tiktoken``, as a user of plain funasr has to.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from nanodictate.testing.replica import (
    DETERMINISTIC_TEXT,
    DETERMINISTIC_TOKENS,
    FULL_DIMS,
    LLM_DIR,
    TINY_DIMS,
    build_replica,
    deterministic_text,
    main,
)
from nanodictate.testing.replica_release import config_yaml

SAMPLE_RATE = 16000


def _load(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch, *, ctc_vocabulary: bool = True
) -> tuple[Any, str]:
    """Plain funasr AutoModel, offline, and what funasr printed meanwhile.

    ``ctc_vocabulary`` gives funasr the folder's multilingual.tiktoken for the CTC tokenizer
    the release's config.yaml declares (see the module docstring).
    """
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    vocabulary = str(model_dir / "multilingual.tiktoken")
    overrides: dict[str, Any] = (
        {"dataset_conf": {"ctc_tokenizer_conf": {"vocab_path": vocabulary}}}
        if ctc_vocabulary
        else {}
    )
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        from funasr import AutoModel

        model = AutoModel(
            model=str(model_dir),
            device="cpu",
            disable_update=True,
            disable_pbar=True,
            ncpu=2,
            log_level="WARNING",
            **overrides,
        )
    return model, printed.getvalue()


def _missed_keys(printed: str) -> list[str]:
    """The parameters funasr's loader found no weights for ("Warning, miss key in ckpt")."""
    prefix = "Warning, miss key in ckpt: "
    return [
        line.removeprefix(prefix).split(",")[0]
        for line in printed.splitlines()
        if line.startswith(prefix)
    ]


def _state_dict(path: Path) -> dict[str, torch.Tensor]:
    saved = torch.load(path, map_location="cpu", weights_only=True)
    state: dict[str, torch.Tensor] = saved.get("state_dict", saved)
    return state


def _speech(tmp_path: Path) -> torch.Tensor:
    """'hello world' from espeak-ng at 16 kHz, or a noise burst where espeak-ng is missing."""
    if shutil.which("espeak-ng") is None:
        return _noise(seconds=1.5, seed=1)
    import soundfile as sf
    from scipy.signal import resample_poly

    wav = tmp_path / "hello.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), "hello world"], check=True)
    audio, rate = sf.read(wav, dtype="float32")
    audio = resample_poly(audio, SAMPLE_RATE, rate).astype(np.float32)
    return torch.from_numpy(audio)


def _noise(seconds: float, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(int(seconds * SAMPLE_RATE), generator=generator)


@pytest.fixture(scope="module")
def deterministic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_replica(tmp_path_factory.mktemp("replica") / "det", deterministic=True)


@pytest.fixture(scope="module")
def loaded(deterministic_dir: Path) -> Iterator[tuple[Any, str]]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield _load(deterministic_dir, monkeypatch)


def test_layout_matches_the_release(deterministic_dir: Path) -> None:
    import yaml

    for name in ("config.yaml", "configuration.json", "model.pt", "multilingual.tiktoken"):
        assert (deterministic_dir / name).is_file(), name
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.json"):
        assert (deterministic_dir / LLM_DIR / name).is_file(), name
    assert (deterministic_dir / LLM_DIR / "merges.txt").is_file()

    meta = json.loads((deterministic_dir / "configuration.json").read_text(encoding="utf-8"))
    assert meta["file_path_metas"] == {
        "init_param": "model.pt",
        "config": "config.yaml",
        "tokenizer_conf": {"init_param_path": LLM_DIR},
        "llm_conf": {"init_param_path": LLM_DIR},
    }
    config = yaml.safe_load((deterministic_dir / "config.yaml").read_text(encoding="utf-8"))
    assert config["model"] == "FunASRNano"
    assert config["audio_encoder"] == "SenseVoiceEncoderSmall"
    assert config["audio_encoder_conf"]["selfattention_layer_type"] == "sanm"
    assert config["audio_adaptor"] == "Transformer"
    assert config["llm_conf"]["llm_dtype"] == "bf16"
    assert config["frontend_conf"]["lfr_m"] == 7
    assert config["tokenizer"] == "HuggingfaceTokenizer"
    # The CTC branch is declared, with the tiny encoder's width, though model.pt lacks it.
    assert config["ctc_decoder"] == "Transformer" and config["detach_ctc_decoder"] is True
    assert config["ctc_decoder_conf"] == {
        "downsample_rate": 1,
        "ffn_dim": TINY_DIMS.ctc_ffn,
        "llm_dim": TINY_DIMS.encoder_dim,
        "encoder_dim": TINY_DIMS.encoder_dim,
        "n_layer": TINY_DIMS.ctc_layers,
    }
    assert config["dataset_conf"]["ctc_tokenizer"] == "SenseVoiceTokenizer"
    assert config["dataset_conf"]["ctc_tokenizer_conf"]["vocab_path"] is None

    total = sum(p.stat().st_size for p in deterministic_dir.rglob("*") if p.is_file())
    assert total < 2_000_000  # tiny: about 0.8 MB

    saved = torch.load(deterministic_dir / "model.pt", map_location="cpu", weights_only=True)
    assert list(saved) == ["state_dict"]  # wrapped, as the release
    prefixes = {key.split(".", 1)[0] for key in saved["state_dict"]}
    assert prefixes == {"audio_encoder", "audio_adaptor", "llm"}  # no CTC tensors
    info = json.loads((deterministic_dir / "replica.json").read_text(encoding="utf-8"))
    assert info["layout"] == "release"


def test_full_size_declares_the_real_ctc_branch() -> None:
    config = config_yaml(FULL_DIMS, "release")
    assert config["ctc_decoder_conf"] == {
        "downsample_rate": 1,
        "ffn_dim": 2048,
        "llm_dim": 512,
        "encoder_dim": 512,
        "n_layer": 5,
    }
    assert config["ctc_conf"] == {
        "dropout_rate": 0.0,
        "ctc_type": "builtin",
        "reduce": True,
        "ignore_nan_grad": True,
    }
    assert config["dataset_conf"]["ctc_tokenizer_conf"] == {
        "vocab_path": None,
        "is_multilingual": True,
        "num_languages": 8749,
    }
    flat = config_yaml(FULL_DIMS, "flat")
    assert not [key for key in flat if "ctc" in key] and "dataset_conf" not in flat
    # Fun-ASR-Nano's files differ from the release's only in model.pt; the release relies on
    # funasr's default CTC vocabulary, which the tiny replicas state to stay tiny.
    assert config_yaml(FULL_DIMS, "nano") == config
    assert "ctc_vocab_size" not in config
    assert config_yaml(TINY_DIMS, "release")["ctc_vocab_size"] == TINY_DIMS.ctc_vocab


def test_plain_funasr_loads_every_ctc_tensor_of_the_nano_layout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With the CTC branch's tensors present (Fun-ASR-Nano on ModelScope), funasr keeps the
    # branch: the replica's tensors have exactly the names and shapes FunASRNano builds.
    folder = build_replica(tmp_path / "nano", deterministic=True, layout="nano")
    model, printed = _load(folder, monkeypatch)
    assert _missed_keys(printed) == []
    saved = _state_dict(folder / "model.pt")
    built = model.model.state_dict()
    ctc = [key for key in saved if key.startswith(("ctc_decoder.", "ctc."))]
    assert ctc and set(saved) == set(built)
    for key in ctc:
        assert torch.equal(built[key], saved[key]), key
    assert model.model.ctc_decoder is not None


def test_unknown_layout_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="release, nano, flat"):
        build_replica(tmp_path / "x", layout="wrapped")  # type: ignore[arg-type]
    assert not (tmp_path / "x").exists()


def test_plain_funasr_builds_the_ctc_branch_then_drops_it(
    deterministic_dir: Path, loaded: tuple[Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # What funasr 1.4.16 does with the release: it builds the declared branch, finds none of
    # its weights in model.pt and disables it after loading.
    model, printed = loaded
    missed = _missed_keys(printed)
    assert missed and all(key.startswith(("ctc_decoder.", "ctc.")) for key in missed)
    assert model.model.ctc_decoder is None and model.model.ctc is None
    assert model.model.ctc_tokenizer is None
    # Without a vocabulary path it looks inside its own package, which has none.
    with pytest.raises(FileNotFoundError, match=r"whisper_lib.assets.multilingual\.tiktoken"):
        _load(deterministic_dir, monkeypatch, ctc_vocabulary=False)


def test_every_checkpoint_key_loads(deterministic_dir: Path, loaded: tuple[Any, str]) -> None:
    model, printed = loaded
    assert not [key for key in _missed_keys(printed) if "ctc" not in key]
    saved = _state_dict(deterministic_dir / "model.pt")
    built = model.model.state_dict()
    assert set(saved) == set(built)
    for key, tensor in saved.items():
        assert built[key].shape == tensor.shape, key
        assert torch.equal(built[key].to(tensor.dtype), tensor), key


def test_transcribes_any_audio_to_the_fixed_text(loaded: tuple[Any, str], tmp_path: Path) -> None:
    model, _ = loaded
    for audio in (_speech(tmp_path), _noise(seconds=2.0, seed=2)):
        result = model.generate(input=audio, language="英文", itn=True)
        assert result[0]["text"] == DETERMINISTIC_TEXT
    # Prompt variations change nothing either.
    result = model.generate(
        input=_noise(seconds=0.7, seed=3), language="中文", itn=False, hotwords=["nano"]
    )
    assert result[0]["text"] == DETERMINISTIC_TEXT


def test_max_length_truncates_to_a_known_prefix(loaded: tuple[Any, str]) -> None:
    model, _ = loaded
    for max_length in (1, 3, DETERMINISTIC_TOKENS, 40):
        result = model.generate(input=_noise(1.0, seed=4), language="英文", max_length=max_length)
        assert result[0]["text"] == deterministic_text(max_length)
    assert deterministic_text(3) == "This is the"
    assert deterministic_text() == deterministic_text(512) == DETERMINISTIC_TEXT


def test_same_text_in_bf16_and_int8(
    deterministic_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, _ = _load(deterministic_dir, monkeypatch)
    audio = _noise(1.0, seed=5)
    assert model.generate(input=audio, language="英文", llm_dtype="bf16")[0]["text"] == (
        DETERMINISTIC_TEXT
    )
    with warnings.catch_warnings():  # quantize_dynamic is deprecated in torch 2.13, still works
        warnings.simplefilter("ignore")
        quantize: Any = torch.ao.quantization.quantize_dynamic
        model.model = quantize(model.model, {torch.nn.Linear}, dtype=torch.qint8)
    assert model.generate(input=audio, language="英文")[0]["text"] == DETERMINISTIC_TEXT


def test_tokenizer_loads_offline_and_agrees_with_tokenizer_json(
    deterministic_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    llm_dir = deterministic_dir / LLM_DIR
    tokenizer = AutoTokenizer.from_pretrained(str(llm_dir))
    raw = Tokenizer.from_file(str(llm_dir / "tokenizer.json"))
    text = "<|im_start|>user\n语音转写成英文：Grüß Gott, ¿qué tal? 안녕하세요<|im_end|>\n"
    ids = tokenizer.encode(text)
    assert ids == raw.encode(text).ids
    assert tokenizer.decode(ids) == text
    for special in ("<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|startofspeech|>"):
        assert len(tokenizer.encode(special)) == 1, special
    config = json.loads((llm_dir / "config.json").read_text(encoding="utf-8"))
    assert config["vocab_size"] == len(tokenizer)
    assert config["eos_token_id"] == tokenizer.convert_tokens_to_ids("<|im_end|>")


def test_ctc_vocabulary_is_valid_tiktoken(deterministic_dir: Path) -> None:
    from tiktoken.load import load_tiktoken_bpe

    ranks = load_tiktoken_bpe(str(deterministic_dir / "multilingual.tiktoken"))
    assert sorted(ranks.values()) == list(range(len(ranks)))
    assert {bytes([b]) for b in range(256)} <= set(ranks)


def test_cli_prints_one_line_and_random_weights_decode(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out_dir = tmp_path / "random"
    assert main([str(out_dir), "--seed", "7", "--layout", "flat"]) == 0
    stdout = capfd.readouterr().out
    assert stdout.count("\n") == 1 and stdout.startswith("replica in ")
    info = json.loads((out_dir / "replica.json").read_text(encoding="utf-8"))
    assert info["deterministic"] is False and info["seed"] == 7 and info["layout"] == "flat"
    saved = torch.load(out_dir / "model.pt", map_location="cpu", weights_only=True)
    assert "state_dict" not in saved  # the flat layout: the plain state dict

    # The flat layout declares no CTC branch: plain funasr needs no vocabulary for it.
    model, printed = _load(out_dir, monkeypatch, ctc_vocabulary=False)
    assert "miss key" not in printed
    # Benchmarks pin the token count like this; random ids must decode without error.
    result = model.generate(
        input=_noise(1.0, seed=6), language="英文", max_length=8, llm_kwargs={"min_new_tokens": 8}
    )
    assert isinstance(result[0]["text"], str)
