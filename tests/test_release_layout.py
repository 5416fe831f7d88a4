"""The release's folder shape through the real Engine.

The release of Fun-ASR-MLT-Nano-2512 wraps its weights (``{"state_dict": ...}``), ships no CTC
tensors, and still declares a CTC branch and its tiktoken tokenizer in config.yaml. Dictation
never uses CTC, so the app builds the model without that branch: neither its 512 × 60515 output
layer nor its vocabulary (whose path may be empty or wrong) can break loading or cost memory.
The tiny deterministic replica reproduces that shape (``models_root``) and the older flat one
(``flat_replica``).
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from nanodictate.core.asr.decoder_loop import FUSED_PROJECTIONS
from nanodictate.core.asr.engine import Engine
from nanodictate.core.asr.funasr_runtime import import_funasr, without_ctc
from nanodictate.core.asr.weights import open_checkpoint
from nanodictate.core.errors import ModelCorruptError
from nanodictate.testing.replica import DETERMINISTIC_TEXT
from nanodictate.testing.speech import speech_with_silence

MODEL = "Fun-ASR-MLT-Nano-2512"


@pytest.fixture(scope="module")
def hello() -> np.ndarray:
    return speech_with_silence("hello world", before=0.5, after=1.5).samples


@pytest.fixture
def sense_voice_tokenizers(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every SenseVoiceTokenizer (the CTC tokenizer) funasr constructs during the test."""
    import_funasr()
    from funasr.register import tables

    built: list[dict[str, Any]] = []
    original = tables.tokenizer_classes["SenseVoiceTokenizer"]

    def recording(**conf: Any) -> Any:
        built.append(conf)
        return original(**conf)

    monkeypatch.setitem(tables.tokenizer_classes, "SenseVoiceTokenizer", recording)
    return built


@contextlib.contextmanager
def _engine(model_dir: Path, models_root: Path, cache_dir: Path) -> Iterator[Engine]:
    engine = Engine(model_dir, vad_dir=models_root / "fsmn-vad", cache_dir=cache_dir, threads=2)
    try:
        yield engine
    finally:
        engine.unload()


def _live_model(engine: Engine) -> Any:
    assert engine._loaded is not None
    return engine._loaded.automodel.model


def _assert_built_without_ctc(model: Any, model_dir: Path) -> None:
    """No CTC module, parameter or tokenizer was ever built (not built and then dropped)."""
    assert model.ctc_decoder is None
    assert not [name for name, _ in model.named_modules() if "ctc" in name]
    assert not [name for name, _ in model.named_parameters() if "ctc" in name]
    # funasr's own fallback (disable_incomplete_ctc) would leave these attributes set to None.
    assert "ctc" not in vars(model)["_modules"]
    assert not hasattr(model, "ctc_tokenizer")
    # Every parameter the model holds comes from the checkpoint: nothing else takes memory.
    checkpoint = open_checkpoint(model_dir / "model.pt")
    assert {part for name, _ in model.named_parameters() for part in _sources(name)} <= set(
        checkpoint
    )


def _sources(parameter: str) -> list[str]:
    """The checkpoint tensors a parameter holds: the decode loop's fused q/k/v and gate/up
    matrices hold their projections' rows."""
    for _, fused, names in FUSED_PROJECTIONS:
        if f".{fused}." in parameter:
            return [parameter.replace(f".{fused}.", f".{name}.") for name in names]
    return [parameter]


def test_the_replica_has_the_release_shape(models_root: Path) -> None:
    folder = models_root / MODEL
    config = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))
    assert config["ctc_decoder"] == "Transformer"
    assert config["detach_ctc_decoder"] is True
    assert set(config["ctc_conf"]) == {"dropout_rate", "ctc_type", "reduce", "ignore_nan_grad"}
    assert config["dataset_conf"]["ctc_tokenizer"] == "SenseVoiceTokenizer"
    assert config["dataset_conf"]["ctc_tokenizer_conf"] == {
        "vocab_path": None,
        "is_multilingual": True,
        "num_languages": 8749,
    }
    saved = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
    assert list(saved) == ["state_dict"]
    assert saved["state_dict"] and not [key for key in saved["state_dict"] if "ctc" in key]


@pytest.mark.parametrize("precision", ["int8", "fp32"])
def test_release_layout_transcribes_the_exact_text(
    models_root: Path,
    tmp_path: Path,
    hello: np.ndarray,
    precision: str,
    sense_voice_tokenizers: list[dict[str, Any]],
) -> None:
    folder = models_root / MODEL
    with _engine(folder, models_root, tmp_path) as engine:
        report = engine.load(precision, "cpu")
        assert report.precision.value == precision
        assert engine.transcribe(hello, 16000, language="en").text == DETERMINISTIC_TEXT
        _assert_built_without_ctc(_live_model(engine), folder)
    assert sense_voice_tokenizers == []


def test_second_int8_load_from_the_cache_builds_no_ctc(
    models_root: Path, tmp_path: Path, hello: np.ndarray
) -> None:
    folder = models_root / MODEL
    with _engine(folder, models_root, tmp_path) as engine:
        engine.load("int8", "cpu")
        engine.unload()
        assert engine.load("int8", "cpu").from_cache
        assert engine.transcribe(hello, 16000, language="en").text == DETERMINISTIC_TEXT
        _assert_built_without_ctc(_live_model(engine), folder)


def test_a_ctc_vocabulary_that_does_not_exist_does_not_matter(
    models_root: Path,
    tmp_path: Path,
    hello: np.ndarray,
    sense_voice_tokenizers: list[dict[str, Any]],
) -> None:
    folder = tmp_path / MODEL
    shutil.copytree(models_root / MODEL, folder)
    config_path = folder / "config.yaml"
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    missing = tmp_path / "nowhere" / "multilingual.tiktoken"
    config["dataset_conf"]["ctc_tokenizer_conf"]["vocab_path"] = str(missing)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")

    with _engine(folder, models_root, tmp_path / "cache") as engine:
        engine.load("fp32", "cpu")
        assert engine.transcribe(hello, 16000, language="en").text == DETERMINISTIC_TEXT
        _assert_built_without_ctc(_live_model(engine), folder)
    assert sense_voice_tokenizers == []
    assert not missing.exists()


def test_wrapped_checkpoint_missing_weights_is_reported(models_root: Path, tmp_path: Path) -> None:
    folder = tmp_path / MODEL
    shutil.copytree(models_root / MODEL, folder)
    saved = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
    state = saved["state_dict"]
    dropped = [key for key in state if key.startswith("audio_adaptor.")]
    for key in dropped:
        del state[key]
    torch.save(saved, folder / "model.pt")

    engine = Engine(
        folder, vad_dir=models_root / "fsmn-vad", cache_dir=tmp_path / "cache", threads=2
    )
    with pytest.raises(ModelCorruptError) as caught:
        engine.load("int8", "cpu")
    message = str(caught.value)
    assert dropped and f"{len(dropped)} of" in message and "audio_adaptor." in message
    # The CTC branch config.yaml declares is not counted as missing.
    assert "ctc" not in message


def test_flat_layout_still_loads(
    flat_replica: Path, models_root: Path, tmp_path: Path, hello: np.ndarray
) -> None:
    config = yaml.safe_load((flat_replica / "config.yaml").read_text(encoding="utf-8"))
    assert not [key for key in config if "ctc" in key] and "dataset_conf" not in config
    saved = torch.load(flat_replica / "model.pt", map_location="cpu", weights_only=True)
    assert "state_dict" not in saved and all(isinstance(v, torch.Tensor) for v in saved.values())

    with _engine(flat_replica, models_root, tmp_path) as engine:
        for precision in ("int8", "fp32"):
            engine.load(precision, "cpu")
            assert engine.transcribe(hello, 16000, language="en").text == DETERMINISTIC_TEXT
            _assert_built_without_ctc(_live_model(engine), flat_replica)


def test_without_ctc_strips_only_the_ctc_branch() -> None:
    conf: dict[str, Any] = {
        "model": "FunASRNano",
        "audio_adaptor": "Transformer",
        "ctc_decoder": "Transformer",
        "ctc_decoder_conf": {"n_layer": 5},
        "ctc_conf": {"dropout_rate": 0.0},
        "ctc_weight": 1.0,
        "detach_ctc_decoder": True,
        "ctc_tokenizer": "SenseVoiceTokenizer",
        "ctc_tokenizer_conf": {"vocab_path": None},
        "dataset_conf": {
            "batch_size": 4,
            "ctc_tokenizer": "SenseVoiceTokenizer",
            "ctc_target_normalize": True,
            "ctc_tokenizer_conf": {"vocab_path": None},
        },
        "tokenizer": "HuggingfaceTokenizer",
    }
    before = repr(conf)
    assert without_ctc(conf) == {
        "model": "FunASRNano",
        "audio_adaptor": "Transformer",
        "dataset_conf": {"batch_size": 4},
        "tokenizer": "HuggingfaceTokenizer",
    }
    assert repr(conf) == before  # the caller's configuration is left alone
    assert without_ctc({"model": "FunASRNano"}) == {"model": "FunASRNano"}


def test_a_checkpoint_that_carries_ctc_tensors_loads_without_them(
    models_root: Path, tmp_path: Path, hello: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    """Fun-ASR-Nano's ModelScope checkpoint ships its CTC branch (86 tensors): they are
    neither 'unused' noise in the log nor, in a small model, a reason to call it damaged."""
    folder = tmp_path / MODEL
    shutil.copytree(models_root / MODEL, folder)
    saved = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
    state = saved["state_dict"]
    ctc = {f"ctc_decoder.blocks.{i}.weight": torch.zeros(4, 4) for i in range(len(state))}
    state.update(ctc, **{"ctc.ctc_lo.weight": torch.zeros(8, 4)})
    torch.save(saved, folder / "model.pt")

    with _engine(folder, models_root, tmp_path / "cache") as engine:
        for precision in ("int8", "fp32"):
            engine.load(precision, "cpu")
            assert engine.transcribe(hello, 16000, language="en").text == DETERMINISTIC_TEXT
            _assert_built_without_ctc(_live_model(engine), folder)
    assert "not used by the model" not in caplog.text
