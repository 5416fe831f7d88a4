"""The second speech model, Fun-ASR-Nano-2512, end to end on its tiny replica.

Its folder has MLT-Nano's layout, but its checkpoint (as ModelScope ships it) also holds the
CTC branch's tensors. The store must accept the folder as a complete Fun-ASR-Nano, the Engine
must load it without building that branch and say the replica's exact text, and the command
line must pick its folder by the same model name as the app's `model` setting.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from nanodictate.core.asr.engine import Engine
from nanodictate.core.models.store import FUN_ASR_NANO, folder_problem, verify_model_folder
from nanodictate.testing.replica import DETERMINISTIC_TEXT, build_replica
from nanodictate.testing.speech import speech_with_silence


@pytest.fixture(scope="module")
def nano_root(tmp_path_factory: pytest.TempPathFactory, vad_model_dir: Path) -> Path:
    """A models folder holding only the tiny deterministic Fun-ASR-Nano replica and FSMN-VAD."""
    root = tmp_path_factory.mktemp("nano-models")
    build_replica(root / FUN_ASR_NANO.folder_name, deterministic=True, layout="nano")
    shutil.copytree(vad_model_dir, root / "fsmn-vad")
    return root


@pytest.fixture(scope="module")
def hello() -> np.ndarray:
    return speech_with_silence("hello world", before=0.5, after=1.5).samples


def test_the_nano_replica_is_a_complete_fun_asr_nano_with_ctc_tensors(nano_root: Path) -> None:
    folder = nano_root / FUN_ASR_NANO.folder_name
    verify_model_folder(FUN_ASR_NANO, folder)
    assert folder_problem(FUN_ASR_NANO, folder) is None

    config = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))
    assert config["model"] == "FunASRNano" and config["ctc_decoder"] == "Transformer"
    saved = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
    assert list(saved) == ["state_dict"]
    ctc = [name for name in saved["state_dict"] if name.startswith(("ctc_decoder.", "ctc."))]
    # Two tiny decoder layers instead of the real five (86 tensors): 36 + 2 for ctc.ctc_lo.
    assert {"ctc.ctc_lo.weight", "ctc.ctc_lo.bias"} <= set(ctc) and len(ctc) == 38
    assert saved["state_dict"]["ctc.ctc_lo.weight"].shape == (64, 32)


def _assert_no_ctc_module(engine: Engine) -> None:
    assert engine._loaded is not None
    model: Any = engine._loaded.automodel.model
    assert model.ctc_decoder is None
    assert not [name for name, _ in model.named_modules() if "ctc" in name]
    assert not [name for name, _ in model.named_parameters() if "ctc" in name]


@pytest.mark.parametrize("precision", ["int8", "fp32"])
def test_engine_transcribes_the_exact_text_without_building_ctc(
    nano_root: Path, tmp_path: Path, hello: np.ndarray, precision: str
) -> None:
    engine = Engine(
        nano_root / FUN_ASR_NANO.folder_name,
        vad_dir=nano_root / "fsmn-vad",
        cache_dir=tmp_path,
        threads=2,
    )
    try:
        report = engine.load(precision, "cpu")
        assert report.precision.value == precision
        assert engine.transcribe(hello, 16000, language="zh").text == DETERMINISTIC_TEXT
        _assert_no_ctc_module(engine)
    finally:
        engine.unload()


def _transcribe_cli(wav: Path, *options: str, cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nanodictate", "transcribe", str(wav), *options],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NANODICTATE_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1"},
    )


def test_cli_model_option_chooses_the_nano_folder(
    nano_root: Path, tmp_path: Path, hello: np.ndarray
) -> None:
    import soundfile

    wav = tmp_path / "hello.wav"
    soundfile.write(wav, hello, 16000)
    root = str(nano_root)
    options = ("--model-dir", root, "--precision", "fp32", "--device", "cpu", "-l", "en")
    done = _transcribe_cli(wav, "--model", "fun-asr-nano", *options, cache=tmp_path / "cache")
    assert done.returncode == 0, done.stderr
    assert done.stdout == DETERMINISTIC_TEXT + "\n"

    # The default model is MLT-Nano, which this models folder does not hold.
    done = _transcribe_cli(wav, *options, cache=tmp_path / "cache")
    assert done.returncode != 0 and done.stdout == ""
    assert "Fun-ASR-MLT-Nano-2512 is not installed" in done.stderr
