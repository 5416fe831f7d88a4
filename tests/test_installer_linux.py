"""The Linux installer as a user meets it: built from this checkout, installed into a fresh
HOME (CPU torch), used for `doctor` and a transcription of the replica, run again as an
update, and uninstalled, leaving only what the user keeps.

No network but PyPI (the uv cache in .cache/ makes later runs quick); torch comes from a
folder of wheels through the installer's test-only NANODICTATE_TORCH_FIND_LINKS. The tests
run in file order: the last one uninstalls.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from nanodictate.core.acceleration import TORCH_VERSION
from nanodictate.core.runtime_install import TORCH_FIND_LINKS_ENV, InstallState

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache"
pytestmark = pytest.mark.timeout(900)


@dataclass(frozen=True)
class Installed:
    home: Path
    installer: Path
    env: dict[str, str]

    @property
    def app_dir(self) -> Path:
        return self.home / ".local/share/nanodictate/app"

    def run(self, *command: str | Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(part) for part in command],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )


def _torch_wheels() -> Path:
    """A folder holding the CPU torch wheel, filled once by pip (which finds it on disk here)."""
    folder = CACHE / "installer-test-torch"
    if not list(folder.glob(f"torch-{TORCH_VERSION}*.whl")):
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--only-binary=:all:", "--dest", str(folder), f"torch=={TORCH_VERSION}"],
            check=True,
        )  # fmt: skip
    return folder


def _uv() -> Path:
    uv = Path(sys.executable).with_name("uv")
    if not uv.is_file():
        pytest.fail("uv is missing from the test environment: pip install uv")
    return uv


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, str(ROOT / "packaging/build.py"), "linux", "--uv", str(_uv()),
         "--out", str(out)],
        check=True, capture_output=True,
    )  # fmt: skip
    home = tmp_path_factory.mktemp("home")
    # The machine's own settings (certificates, proxies) stay; the user's folders do not.
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("XDG_", "NANODICTATE_", "VIRTUAL_ENV", "PYTHON"))
    }
    env = {
        **inherited,
        "HOME": str(home),
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "UV_CACHE_DIR": str(CACHE / "installer-test-uv"),
        # The interpreter behind this virtual environment, instead of one uv downloads.
        "NANODICTATE_INSTALL_PYTHON": str(Path(sys.executable).resolve()),
        TORCH_FIND_LINKS_ENV: str(_torch_wheels()),
    }
    setup = Installed(home, next(out.glob("nanodictate-*-linux-x86_64.sh")), env)
    result = setup.run("sh", setup.installer, "--autostart")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Runtime ready: torch" in result.stdout
    return setup


def test_install_puts_launcher_menu_entry_icon_and_autostart_in_place(
    installed: Installed,
) -> None:
    home, app_dir = installed.home, installed.app_dir
    launcher = home / ".local/bin/nanodictate"
    assert launcher.resolve() == (app_dir / "runtime/bin/nanodictate").resolve()
    entry = (home / ".local/share/applications/nanodictate.desktop").read_text()
    assert f"Exec={app_dir}/runtime/bin/nanodictate\n" in entry
    assert (home / ".local/share/icons/hicolor/scalable/apps/nanodictate.svg").is_file()
    autostart = (home / ".config/autostart/nanodictate.desktop").read_text()
    assert f"Exec={app_dir}/runtime/bin/nanodictate\n" in autostart
    state = InstallState.load(app_dir / "install.json")
    assert state.variant == "cpu" and state.lock_sha256


def test_running_the_installer_again_keeps_the_runtime(installed: Installed) -> None:
    result = installed.run("sh", installed.installer)
    assert result.returncode == 0, result.stderr
    assert "Runtime unchanged" in result.stdout
    assert "Runtime ready" not in result.stdout
    update = installed.run(installed.home / ".local/bin/nanodictate", "update")
    assert update.returncode == 0, update.stderr
    assert update.stdout.strip() == "Runtime unchanged: its dependencies are up to date"


def test_doctor_of_the_installed_app(installed: Installed, models_root: Path) -> None:
    launcher = installed.home / ".local/bin/nanodictate"
    env = {**installed.env, "NANODICTATE_MODELS_DIR": str(models_root)}
    result = subprocess.run(
        [str(launcher), "doctor", "--no-desktop"],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    lines = result.stdout.splitlines()
    assert f"[info] nanodictate: 0.1.0 (installed in {installed.app_dir})" in lines
    assert f"[  ok] torch: {TORCH_VERSION}+cpu (CPU build): no GPU usable (CPU only)" in lines
    assert "[info] runtime: torch variant cpu" in lines
    assert sum(line.startswith("[  ok] model: ") for line in lines) == 2, result.stdout


def test_transcription_with_the_installed_app(
    installed: Installed, models_root: Path, tmp_path: Path
) -> None:
    import soundfile

    from nanodictate.testing.replica import DETERMINISTIC_TEXT
    from nanodictate.testing.speech import speech_with_silence

    wav = tmp_path / "hello.wav"
    soundfile.write(wav, speech_with_silence("hello world", before=0.5, after=1.0).samples, 16000)
    result = installed.run(
        installed.home / ".local/bin/nanodictate", "transcribe", "--model-dir", models_root,
        "--language", "en", wav,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == DETERMINISTIC_TEXT


def _files_under(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*") if not path.is_dir()}


def test_uninstall_leaves_only_models_and_history_then_nothing(installed: Installed) -> None:
    home, data = installed.home, installed.home / ".local/share/nanodictate"
    kept = {
        ".local/share/nanodictate/models/Fun-ASR-MLT-Nano-2512/model.pt",
        ".local/share/nanodictate/history.sqlite3",
    }
    removed = [".config/nanodictate/nanodictate.ini", ".local/state/nanodictate/log/x.log"]
    for name in (*kept, *removed):
        (home / name).parent.mkdir(parents=True, exist_ok=True)
        (home / name).write_text("the user's")
    uninstaller = home / "uninstall.sh"  # the second run below, after the app folder is gone
    uninstaller.write_bytes((installed.app_dir / "uninstall.sh").read_bytes())

    result = installed.run("sh", installed.app_dir / "uninstall.sh", "--yes")

    assert result.returncode == 0, result.stderr
    assert _files_under(home) == {*kept, "uninstall.sh"}
    assert f"Kept: {data}/models" in result.stdout

    result = installed.run("sh", uninstaller, "--remove-models", "--remove-history")
    assert result.returncode == 0, result.stderr
    assert _files_under(home) == {"uninstall.sh"}
    assert not data.exists()
    assert not os.path.lexists(home / ".local/bin/nanodictate")
