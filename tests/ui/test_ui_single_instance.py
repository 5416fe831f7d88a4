"""One instance per user: commands from a second launch or the CLI reach the first."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QDir

from nanodictate.ui.single_instance import InstanceServer, send_command, server_name


def _in_another_process(code: str, qtbot: Any) -> str:
    """Run `code` in a second process while this one serves the event loop (a thread would
    not do: PySide's blocking socket calls keep the GIL)."""
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    qtbot.waitUntil(lambda: process.poll() is not None, timeout=10000)
    out, err = process.communicate()
    assert process.returncode == 0, err
    return out.strip()


def _ask(command: str, name: str, qtbot: Any) -> str | None:
    code = (
        "from nanodictate.ui.single_instance import send_command; "
        f"print(send_command({command!r}, name={name!r}))"
    )
    answer = _in_another_process(code, qtbot)
    return None if answer == "None" else answer


def test_commands_reach_the_running_instance(qapp: Any, qtbot: Any) -> None:
    received: list[str] = []
    name = f"nanodictate-test-{uuid.uuid4().hex[:8]}"
    server = InstanceServer(lambda command: received.append(command) or True, name=name)
    assert server.listen()
    try:
        assert _ask("toggle", name, qtbot) == "ok"
        assert _ask("cancel", name, qtbot) == "ok"
        assert _ask("format-disk", name, qtbot) == "unknown"
        assert received == ["toggle", "cancel"]
        # A second instance sees the first and does not take over.
        code = (
            "from PySide6.QtCore import QCoreApplication; app = QCoreApplication([]); "
            "from nanodictate.ui.single_instance import InstanceServer; "
            f"print(InstanceServer(lambda c: True, name={name!r}).listen())"
        )
        assert _in_another_process(code, qtbot) == "False"
        assert _ask("stop", name, qtbot) == "ok" and received[-1] == "stop"
    finally:
        server.close()


def test_no_instance_answers_none(qapp: Any) -> None:
    assert send_command("toggle", name=f"nanodictate-absent-{uuid.uuid4().hex[:8]}") is None


@pytest.mark.skipif(os.name != "posix", reason="socket files are a Unix thing")
def test_a_stale_socket_file_is_replaced(qapp: Any) -> None:
    name = f"nanodictate-stale-{uuid.uuid4().hex[:8]}"
    stale = Path(QDir.tempPath()) / name
    stale.write_text("left by a crashed instance")
    server = InstanceServer(lambda command: True, name=name)
    try:
        assert server.listen()
    finally:
        server.close()


def test_socket_name_is_per_user_and_config_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("NANODICTATE_CONFIG_DIR", str(tmp_path / "a"))
    first = server_name()
    monkeypatch.setenv("NANODICTATE_CONFIG_DIR", str(tmp_path / "b"))
    assert server_name() != first and server_name().startswith("nanodictate-")


def test_cli_says_clearly_when_no_app_runs(capsys: pytest.CaptureFixture[str]) -> None:
    from nanodictate.cli import EXIT_FAILED, run_remote

    assert run_remote("toggle") == EXIT_FAILED
    assert "not running" in capsys.readouterr().err
