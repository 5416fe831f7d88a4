"""Prepare what the one-command GPU check needs on a bare CUDA machine with no network.

    python bench/gpu/prepare.py            # writes bench/gpu/carry/ (git-ignored, ≈12 MB)

The GPU machine brings Python 3.12 with its own torch (2.11, CUDA) and transformers (5.x),
and nothing can be downloaded there. So this script, run where PyPI is reachable, gathers:

* ``wheels/``: funasr and the few packages under it that such an image lacks, as CPython 3.12
  manylinux wheels, at the versions this checkout is tested with (read from the installed
  packages, so the GPU runs the same code as CI). torch, transformers, numpy, scipy and the
  like are *not* carried: the image's own builds match its CUDA driver;
* ``fsmn-vad/``: the real FSMN-VAD model (from its PyPI wheel, as the tests use it);
* ``speech/``: 5 s and 10 s of espeak-ng speech (espeak-ng is not on the GPU machine).

The folder must stay well under the 64 MiB a device call carries: ``main`` fails above
``CARRY_LIMIT``. ``bench/gpu/run.sh`` is the command to run there.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import wave
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DEFAULT_CARRY = HERE / "carry"
CARRY_LIMIT = 48 << 20  # leaves room under the 64 MiB call limit for the working tree

# What funasr (and our engine) import that a CUDA image with torch, transformers, numpy,
# scipy, scikit-learn, numba, sentencepiece, tiktoken, psutil, PyYAML and huggingface_hub
# does not have. Versions are those installed here, so both sides run the same code.
CARRIED = (
    "funasr",
    "kaldi-native-fbank",
    "hydra-core",
    "omegaconf",
    "antlr4-python3-runtime",
    "kaldiio",
    "librosa",
    "soundfile",
    "cffi",
    "pycparser",
    "soxr",
    "audioread",
    "pooch",
    "decorator",
    "jaconv",
    "jamo",
    "torch-complex",
    "modelscope",
    "rapidfuzz",
    "websockets",
    "platformdirs",
)
# Published as source only; pure Python, so a wheel built here runs on any CPython 3.
SOURCE_ONLY = frozenset({"antlr4-python3-runtime"})

PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
)

SPEECH_SECONDS = (5, 10)
SENTENCE = "the quick brown fox jumps over the lazy dog while we dictate a note"


def pinned(name: str) -> str:
    return f"{name}=={metadata.version(name)}"


def pip(*arguments: str) -> None:
    command = [sys.executable, "-m", "pip", *arguments]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise SystemExit(f"pip {' '.join(arguments[:2])} failed:\n{done.stderr[-3000:]}")


def gather_wheels(wheels: Path, python_version: str) -> None:
    binary = [pinned(name) for name in CARRIED if name not in SOURCE_ONLY]
    abi = "cp" + python_version.replace(".", "")
    platform_flags = [flag for p in PLATFORMS for flag in ("--platform", p)]
    pip(
        "download", "--quiet", "--no-deps", "--only-binary=:all:",
        "--python-version", python_version, "--implementation", "cp",
        "--abi", abi, "--abi", "abi3", "--abi", "none", *platform_flags, "--platform", "any",
        "--dest", str(wheels), *binary,
    )  # fmt: skip
    for name in sorted(SOURCE_ONLY):
        pip("wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels), pinned(name))


def write_speech(folder: Path) -> None:
    from nanodictate.core.audio_input import SAMPLE_RATE
    from nanodictate.testing.speech import make_long_recording, speech

    sentence = speech(SENTENCE)
    for seconds in SPEECH_SECONDS:
        parts = [sentence] * max(1, int(seconds / (len(sentence) / SAMPLE_RATE)) + 1)
        recording = make_long_recording(parts, [0.2] * (len(parts) - 1), lead=0.3, tail=0.3)
        samples = recording.samples[: seconds * SAMPLE_RATE]
        with wave.open(str(folder / f"speech-{seconds}s.wav"), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(SAMPLE_RATE)
            out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def prepare(carry: Path, python_version: str) -> dict[str, Any]:
    from nanodictate.testing.vad_model import ensure_test_vad_model

    if carry.exists():
        shutil.rmtree(carry)
    for sub in ("wheels", "speech"):
        (carry / sub).mkdir(parents=True)
    gather_wheels(carry / "wheels", python_version)
    shutil.copytree(ensure_test_vad_model(), carry / "fsmn-vad")
    write_speech(carry / "speech")
    manifest: dict[str, Any] = {
        "python": python_version,
        "wheels": sorted(path.name for path in (carry / "wheels").glob("*.whl")),
        "bytes": folder_bytes(carry),
    }
    (carry / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--carry", type=Path, default=DEFAULT_CARRY)
    parser.add_argument("--python-version", default="3.12", help="the GPU image's Python")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    manifest = prepare(args.carry, args.python_version)
    size = manifest["bytes"]
    print(f"{args.carry}: {len(manifest['wheels'])} wheels, {size / 2**20:.1f} MiB")
    if size > CARRY_LIMIT:
        print(f"too large to carry: over {CARRY_LIMIT >> 20} MiB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
