"""The runtime steps both installers run (core/runtime_install.py), with a recording runner in
place of uv: which commands, in which order, and what install.json remembers."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from nanodictate.core import runtime_install as ri
from nanodictate.core.acceleration import CPU, CUDA_13_0


class RecordingRunner:
    """Answers each command with exit status 0, or 1 for those containing `fail_on`."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.commands: list[list[str]] = []
        self.environments: list[dict[str, str]] = []
        self.fail_on = fail_on

    def __call__(
        self, command: Sequence[str], env: Mapping[str, str]
    ) -> subprocess.CompletedProcess[str]:
        self.commands.append(list(command))
        self.environments.append(dict(env))
        failed = self.fail_on is not None and any(self.fail_on in part for part in command)
        stderr = "RuntimeError: CUDA error: no kernel image is available\n" if failed else ""
        return subprocess.CompletedProcess(command, int(failed), "", stderr)


@pytest.fixture
def windows_app(tmp_path: Path) -> ri.Layout:
    layout = ri.Layout(tmp_path / "app", "windows")
    layout.lock_file.parent.mkdir(parents=True)
    layout.lock_file.write_text("numpy==2.3.4\n")
    return layout


def test_windows_install_runs_lock_then_torch_then_a_check(windows_app: ri.Layout) -> None:
    runner = RecordingRunner()
    installer = ri.RuntimeInstaller(windows_app, runner, env={})

    assert ri.install(installer, CPU) == 0

    uv, python = str(windows_app.app_dir / "uv.exe"), windows_app.runtime / "Scripts/python.exe"
    assert runner.commands == [
        [uv, "pip", "install", "--python", str(python), "--no-deps", "--require-hashes", "-r",
         str(windows_app.app_dir / "locks" / "windows.txt")],
        [uv, "pip", "install", "--python", str(python), "--index-url",
         "https://download.pytorch.org/whl/cpu", "torch==2.13.0+cpu"],
        [str(python), "-c", ri._VERIFY_CPU],
    ]  # fmt: skip
    assert runner.environments[0]["UV_CACHE_DIR"] == str(windows_app.app_dir / "cache")
    state = ri.InstallState.load(windows_app.state_file)
    assert (state.variant, state.lock_sha256) == ("cpu", ri.lock_digest(windows_app.lock_file))


def test_torch_from_a_local_folder_when_the_test_override_is_set(windows_app: ri.Layout) -> None:
    command = ri.torch_command(windows_app, CUDA_13_0, {ri.TORCH_FIND_LINKS_ENV: "/wheels"})
    assert command[-4:] == ["--no-index", "--find-links", "/wheels", "torch==2.13.0"]


def test_a_gpu_build_that_fails_its_check_falls_back_to_cpu_and_is_remembered(
    windows_app: ri.Layout,
) -> None:
    runner = RecordingRunner(fail_on="device='cuda'")
    installer = ri.RuntimeInstaller(windows_app, runner, env={})

    problem = installer.switch_torch(CUDA_13_0)

    assert problem == "RuntimeError: CUDA error: no kernel image is available"
    assert runner.commands[0][-1] == "torch==2.13.0+cu130"
    assert runner.commands[-1][-1] == "torch==2.13.0+cpu"
    state = installer.state()
    assert state.variant == "cpu"
    assert state.failed_variants == {"cu130": problem}


def test_a_working_gpu_build_clears_its_earlier_failure(windows_app: ri.Layout) -> None:
    ri.InstallState(variant="cpu", failed_variants={"cu130": "old"}).save(windows_app.state_file)
    installer = ri.RuntimeInstaller(windows_app, RecordingRunner(), env={})
    assert installer.switch_torch(CUDA_13_0) is None
    assert (installer.state().variant, installer.state().failed_variants) == ("cu130", {})


def test_update_keeps_the_runtime_while_the_lock_is_unchanged(windows_app: ri.Layout) -> None:
    runner = RecordingRunner()
    installer = ri.RuntimeInstaller(windows_app, runner, env={})
    ri.install(installer, CPU)
    runner.commands.clear()

    assert ri.update(installer, assume_yes=True) == 0
    assert runner.commands == []


def test_update_after_a_lock_change_asks_then_installs_only_the_dependencies(
    windows_app: ri.Layout, capsys: pytest.CaptureFixture[str]
) -> None:
    runner = RecordingRunner()
    installer = ri.RuntimeInstaller(windows_app, runner, env={})
    ri.install(installer, CUDA_13_0)
    windows_app.lock_file.write_text("numpy==2.3.5\n")
    runner.commands.clear()

    assert ri.update(installer, assume_yes=False, check_only=True) == ri.EXIT_LOCK_CHANGED
    # No terminal to ask (pytest's stdin): nothing is downloaded.
    assert ri.update(installer, assume_yes=False) == 0
    assert "pass --yes" in capsys.readouterr().out
    assert runner.commands == []

    assert ri.update(installer, assume_yes=True) == 0
    assert [command[-1] for command in runner.commands] == [str(windows_app.lock_file)]
    assert installer.state().variant == "cu130"  # the GPU build stays
    assert not installer.lock_changed()


def test_installed_layout_is_found_beside_the_runtime_only(tmp_path: Path) -> None:
    runtime = tmp_path / "app" / "runtime"
    runtime.mkdir(parents=True)
    assert ri.installed_layout(runtime) is None
    ri.InstallState(variant="cpu").save(tmp_path / "app" / ri.STATE_NAME)
    layout = ri.installed_layout(runtime)
    assert layout is not None and layout.app_dir == (tmp_path / "app").resolve()


def test_update_command_refuses_an_app_not_installed_by_its_installer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import argparse

    from nanodictate import update

    parser = argparse.ArgumentParser()
    update.add_arguments(parser)
    assert update.run(parser.parse_args([])) == 1  # this test runs from the checkout's .venv
    assert "not installed by its installer" in capsys.readouterr().err
