"""The Windows Setup.exe, built here with makensis and opened with 7-Zip: it carries uv.exe,
the app's wheel and the Windows lock, and its script calls the runtime steps that
tests/test_installer_runtime.py checks. Not run under Wine: uv would fetch Python from
GitHub and torch from PyTorch's index, neither reachable here."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from nanodictate import __version__
from nanodictate.core import runtime_install

ROOT = Path(__file__).resolve().parents[1]
NSI = ROOT / "packaging/windows/installer.nsi"
pytestmark = pytest.mark.timeout(600)


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: apt-get install {package} (scripts/setup.sh --tests)")
    return path


def _uv_windows_wheel() -> Path:
    """PyPI's uv wheel for win_amd64, downloaded once into .cache/."""
    folder = ROOT / ".cache/uv-wheels"
    found = sorted(folder.glob("uv-*-win_amd64.whl"))
    if not found:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--only-binary=:all:", "--platform", "win_amd64", "--dest", str(folder),
             "uv==0.13.9"],
            check=True,
        )  # fmt: skip
        found = sorted(folder.glob("uv-*-win_amd64.whl"))
    return found[-1]


@pytest.fixture(scope="module")
def setup_exe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _tool("makensis", "nsis")
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, str(ROOT / "packaging/build.py"), "windows", "--fast",
         "--uv", str(_uv_windows_wheel()), "--out", str(out)],
        check=True, capture_output=True,
    )  # fmt: skip
    return out / f"nanodictate-{__version__}-windows-x64-setup.exe"


def _sevenzip(*arguments: str | Path) -> str:
    command = [_tool("7z", "p7zip-full"), *(str(a) for a in arguments)]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def test_setup_exe_carries_uv_the_wheel_the_lock_and_an_uninstaller(
    setup_exe: Path, tmp_path: Path
) -> None:
    names = set(re.findall(r"^Path = (.+)$", _sevenzip("l", "-slt", setup_exe), re.MULTILINE))
    wheel = f"nanodictate-{__version__}-py3-none-any.whl"
    assert {"uv.exe", wheel, "locks/windows.txt", "uninstall.exe"} <= names
    assert not any("torch" in name for name in names)
    assert setup_exe.stat().st_size < 40 * 2**20  # small: no torch, no Python
    _sevenzip("x", f"-o{tmp_path}", setup_exe, "uv.exe")
    uv = (tmp_path / "uv.exe").read_bytes()
    assert uv[:2] == b"MZ" and len(uv) > 10 * 2**20  # a Windows program, whole


def test_setup_exe_lock_and_wheel_are_the_checkout_s(setup_exe: Path, tmp_path: Path) -> None:
    wheel = f"nanodictate-{__version__}-py3-none-any.whl"
    _sevenzip("x", f"-o{tmp_path}", setup_exe, "locks/windows.txt", wheel)
    lock = (tmp_path / "locks/windows.txt").read_bytes()
    assert lock == (ROOT / "packaging/locks/windows.txt").read_bytes()
    with zipfile.ZipFile(tmp_path / wheel) as archive:
        assert "nanodictate/core/runtime_install.py" in archive.namelist()


def test_installer_script_calls_the_runtime_steps_by_their_interface() -> None:
    script = NSI.read_text(encoding="utf-8")
    assert "-m nanodictate.core.runtime_install install --variant cpu" in script
    assert "-m nanodictate.core.runtime_install update --check" in script
    assert f"${{If}} $0 == {runtime_install.EXIT_LOCK_CHANGED}" in script
    assert "RequestExecutionLevel user" in script
    # Per user: only HKCU is written, never HKLM.
    assert "HKLM" not in script
