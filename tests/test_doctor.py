"""`nanodictate doctor`: one line per finding, a failing check reported instead of raised, and
nothing dictated in the report. (The installed app's full report, torch included, is in
tests/test_installer_linux.py.)"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from nanodictate import doctor
from nanodictate.core.history import History


@pytest.fixture
def empty_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NANODICTATE_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("NANODICTATE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("NANODICTATE_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("NANODICTATE_PLATFORM", "unavailable")
    return tmp_path


def _run(*arguments: str) -> int:
    parser = argparse.ArgumentParser()
    doctor.add_arguments(parser)
    return doctor.run(parser.parse_args(list(arguments)))


def test_report_names_missing_models_and_fails(
    empty_machine: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run("--no-torch") == 1
    lines = capsys.readouterr().out.splitlines()
    models = empty_machine / "models"
    assert f"[FAIL] model: Fun-ASR-MLT-Nano-2512: missing ({models}/Fun-ASR-MLT-Nano-2512)" in lines
    assert lines[0].startswith("[info] nanodictate: ")
    assert any(line.startswith("[warn] hotkeys: unavailable") for line in lines)
    assert any(line.startswith("[  ok] disk: ") for line in lines)
    assert not (empty_machine / "config").exists()  # read only: no settings file made


def test_report_holds_no_dictated_text(
    empty_machine: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    History(empty_machine / "data" / "history.sqlite3").add(
        "the secret words I dictated", language="en", audio_seconds=1.0, latency_seconds=0.1
    )
    _run("--no-torch", "--no-desktop")
    assert "secret" not in capsys.readouterr().out


def test_a_check_that_cannot_run_becomes_a_finding_and_the_others_still_run() -> None:
    def broken() -> list[doctor.Check]:
        raise OSError("no /proc here")

    found = doctor.run_checks([("audio", broken), ("resources", doctor.check_resources)])
    assert found[0].line() == "[FAIL] audio: check failed: OSError: no /proc here"
    assert [check.topic for check in found[1:]] == ["disk", "memory"]


def test_doctor_imports_without_torch() -> None:
    code = "import sys, nanodictate.doctor, nanodictate.update; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
