"""A team server for the desktop tests: `nanodictate serve` in its own process on loopback,
started as an admin starts it (a token file, the models folder), with the tiny replica.

It starts its own Ray node (1 CPU, no dashboard, a private temp folder so it can neither find
nor disturb another Ray on the machine). Every process of it — the serve command, Ray's GCS,
raylet, agents and workers — carries the desktop harness's marker variable with a value of
its own (Ray hands its environment on to what it starts), so `stop()` stops it as systemd
does and then checks by marker that nothing is left; a reaper process ends them all should
this test process die first. `ray stop` is no help here: it ends every Ray on the machine.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from desktop.harness import _REAPER, MARKER_ENV, pids_with_marker

REPO = Path(__file__).resolve().parents[2]
TOKEN = "desktop-team-token-0123456789"
START_TIMEOUT_S = 240.0  # Ray, Serve and the replica's load on a busy 2-core machine
STOP_TIMEOUT_S = 60.0
REAPER_LIMIT_S = 900.0  # the module's tests are long over by then


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class TeamServer:
    """`nanodictate serve` on 127.0.0.1; `start()`, then `url` and `token`; `stop()`."""

    def __init__(self, models_root: Path, folder: Path) -> None:
        self.models_root = models_root
        self.folder = folder
        self.token = TOKEN
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.marker = f"team-server-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.log_path = folder / "serve.log"
        # Short: Ray's socket paths must stay under 108 bytes.
        self.ray_dir = Path(tempfile.mkdtemp(prefix="nd-ray-"))
        self.process: subprocess.Popen[bytes] | None = None
        self._reaper: subprocess.Popen[bytes] | None = None
        self.exit_code: int | None = None

    def start(self) -> TeamServer:
        tokens = self.folder / "tokens"
        tokens.write_text(f"{self.token}  # the desktop tests\n")
        tokens.chmod(0o600)
        # First: it ends whatever carries the marker once our end of its stdin closes.
        self._reaper = subprocess.Popen(
            [sys.executable, "-c", _REAPER, self.marker, str(REAPER_LIMIT_S), MARKER_ENV,
             str(self.ray_dir)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("RAY_")  # RAY_ADDRESS would join someone else's cluster
        }
        env.update(
            {
                MARKER_ENV: self.marker,
                "RAY_TMPDIR": str(self.ray_dir),
                "NANODICTATE_CACHE_DIR": str(self.folder / "cache"),
            }
        )
        command = [
            sys.executable, "-m", "nanodictate", "serve",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--metrics-port", str(free_port()),
            "--token-file", str(tokens),
            "--model-dir", str(self.models_root),
            "--device", "cpu", "--threads", "1", "--num-cpus", "1",
            "--batch-wait", "0",
        ]  # fmt: skip
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT
            )
        self._wait_healthy()
        return self

    def health(self) -> dict[str, Any] | None:
        """The server's /health answer, or None while it does not answer."""
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=5) as response:
                answer: dict[str, Any] = json.loads(response.read())
                return answer
        except (OSError, ValueError):
            return None

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while (answer := self.health()) is None or answer.get("status") != "ok":
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"the server did not answer in time:\n{self.log_tail()}")
            time.sleep(0.5)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> list[str]:
        """SIGTERM, as systemd stops a service; then every process it started must be gone.

        Returns what was still running after the wait (each killed then), "pid name" each:
        empty when the server ended cleanly. Safe to call more than once."""
        leftovers: list[str] = []
        if self.process is not None and self.exit_code is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.exit_code = self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.exit_code = self.process.wait()
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while pids_with_marker(self.marker) and time.monotonic() < deadline:
                time.sleep(0.2)
            leftovers = [f"{pid} {_name(pid)}" for pid in pids_with_marker(self.marker)]
        if self._reaper is not None:
            assert self._reaper.stdin is not None
            self._reaper.stdin.close()  # the reaper ends the leftovers, removes the Ray folder
            self._reaper.wait(timeout=30)
            self._reaper = None
        return leftovers


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "(gone)"
