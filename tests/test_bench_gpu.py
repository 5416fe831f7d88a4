"""The one-command GPU check (bench/gpu/) is ready when a GPU machine is lent: what it carries
builds and fits, and its whole logic runs here on the CPU. No timing is asserted."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PREPARE = REPO / "bench" / "gpu" / "prepare.py"
CALL_LIMIT = 64 << 20  # what one device call carries, working tree included


def prepare(carry: Path, python_version: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, str(PREPARE), "--carry", str(carry), "--python-version", python_version],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    manifest: dict[str, object] = json.loads((carry / "manifest.json").read_text())
    return manifest


def tree_bytes() -> int:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout
    names = [name for name in listed.decode().split("\0") if name]
    return sum((REPO / name).stat().st_size for name in names if (REPO / name).is_file())


@pytest.mark.timeout(600)
def test_the_carried_folder_builds_for_the_gpu_image_and_fits_one_call(tmp_path: Path) -> None:
    carry = tmp_path / "carry"
    manifest = prepare(carry, "3.12")
    wheels = manifest["wheels"]
    assert isinstance(wheels, list)
    assert any(name.startswith("funasr-1.4.16-") for name in wheels)
    # The compiled ones are for the image's CPython 3.12 (or its stable ABI).
    compiled = [name for name in wheels if "manylinux" in name and "-none-" not in name]
    assert compiled and all("cp312" in name or "abi3" in name for name in compiled), compiled
    for wheel in carry.glob("wheels/*.whl"):
        assert zipfile.ZipFile(wheel).testzip() is None
    assert {p.name for p in (carry / "speech").iterdir()} == {"speech-5s.wav", "speech-10s.wav"}
    assert (carry / "fsmn-vad" / "model.pt").is_file()
    carried = int(str(manifest["bytes"]))
    assert carried + tree_bytes() < CALL_LIMIT, f"{carried >> 20} MiB carried"


@pytest.mark.timeout(900)  # several fresh processes, each importing torch and funasr
def test_the_gpu_command_runs_its_whole_logic_on_the_cpu(tmp_path: Path) -> None:
    """run.sh as on the GPU machine (wheels laid over this interpreter's packages), smoke."""
    carry = tmp_path / "carry"
    prepare(carry, f"{sys.version_info.major}.{sys.version_info.minor}")
    out = tmp_path / "out"
    done = subprocess.run(
        ["sh", "bench/gpu/run.sh", str(out), "--smoke"],
        cwd=REPO,
        env={**os.environ, "PYTHON": sys.executable, "CARRY": str(carry), "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "gpu.json").read_text())
    assert summary["device"] == "cpu" and summary["replica"] == "tiny"
    columns = summary["columns"]
    assert set(columns) == {
        "ours int8 first",
        "ours int8",
        "ours bf16",
        "ours fp32",
        "default fp32",
    }
    for name, column in columns.items():
        assert column.get("load_seconds", 0) > 0, (name, column)
        assert column["decode_ms_per_token"] > 0 and column["latency_10s"] > 0
    cases = summary["cases"]
    tiers = cases["tiers"]
    assert tiers["load_s"] > 0 and tiers["worker_start_and_load_s"] > 0, tiers
    assert cases["layer"]["bf16_ms_per_call"] > 0, cases["layer"]
    assert cases["decode-loop"]["loop_ms_per_token"] > 0, cases["decode-loop"]
    assert cases["decode-loop"]["same_text"] is True, cases["decode-loop"]
    assert all(cases[name] == {"skipped": "needs CUDA"} for name in ("oom-load", "oom-decode"))
    table = (out / "gpu.md").read_text()
    assert "| decode (ms/token) |" in table and "| idle tier |" in table
