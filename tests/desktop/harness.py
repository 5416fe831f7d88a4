"""A real, private desktop for end-to-end tests: X server, tray host, audio server with a
virtual microphone, a text window to dictate into, and helpers to drive them.

    from desktop.harness import DesktopSession

    with DesktopSession() as desk:                    # Xvfb + trayer + PulseAudio, ≈1–3 s
        window = desk.open_text_window()              # focused Qt text box, read back exactly
        app = desk.popen([sys.executable, "-m", "nanodictate"], name="app")
        desk.hold("ctrl+alt+space", 2.0, during=lambda: desk.play_speech(wav))
        window.wait_for_text("Hello world.")

Everything a session starts gets its own private HOME, XDG_RUNTIME_DIR, display, audio
socket and clipboard, and carries the marker variable NANODICTATE_DESKTOP_SESSION=<id> in its
environment. `close()` (or leaving the `with`) stops every process it started — by PID, by
process group and, for daemonised helpers such as xclip's forked child, by that marker — and a
watchdog kills the whole session if it outlives `watchdog_s`, so a hung test cannot hang CI.

The traps this works around are written up in /work/shared/DESKTOP-TESTING.md: xclip forks a
child that inherits stdout (never give it a pipe), the clipboard changes owner only after xclip
returns (poll before pasting), a fresh capture stream on an idle null sink starts late (keep a
silent stream playing and probe), `xdotool windowactivate` needs a window manager (use
`windowfocus`).

Running this file as a script starts the text window (`python harness.py text-window ...`);
the session does that for you.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

__all__ = [
    "MARKER_ENV",
    "DesktopError",
    "DesktopSession",
    "PipeMicrophone",
    "TextWindow",
    "WindowGeometry",
    "missing_tools",
    "pids_with_marker",
]

T = TypeVar("T")

MARKER_ENV = "NANODICTATE_DESKTOP_SESSION"
MIC_SINK = "vmic_sink"
MIC_SOURCE = "vmic"
SPEAKER_SINK = "speakers"
MIC_RATE = 16000

_HERE = Path(__file__).resolve()
# Variables of the outer session that must not leak into the private desktop.
_DROPPED_ENV_PREFIXES = ("XDG_", "PULSE_", "QT_", "WAYLAND_", "DBUS_", "GTK_", "SESSION_")
_DROPPED_ENV = {"DISPLAY", "XAUTHORITY", "ALSA_CONFIG_PATH", "DESKTOP_SESSION", "TMPDIR"}

_TOOLS_X = ("Xvfb", "xdotool", "xclip")
_TOOLS_TRAY = ("trayer",)
_TOOLS_AUDIO = ("pulseaudio", "pactl", "pacat", "parec", "paplay", "espeak-ng")


class DesktopError(RuntimeError):
    """The desktop session could not be set up or a helper failed (message says which)."""


def missing_tools(*, tray: bool = True, audio: bool = True) -> list[str]:
    """Executables a session with these parts needs that are not on PATH."""
    tools = [*_TOOLS_X, *(_TOOLS_TRAY if tray else ()), *(_TOOLS_AUDIO if audio else ())]
    return [tool for tool in tools if shutil.which(tool) is None]


def pids_with_marker(marker: str) -> list[int]:
    """PIDs of processes whose environment holds MARKER_ENV=marker (this process excluded)."""
    needle = f"\0{MARKER_ENV}={marker}\0".encode()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as handle:
                data = handle.read()
        except OSError:
            continue
        if needle in b"\0" + data + b"\0":
            found.append(int(entry.name))
    return found


def _command_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _process_state(pid: int) -> str:
    """The state letter of /proc/PID/stat (R, S, T for stopped …); "" once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def _wait_for(
    predicate: Callable[[], T | bool | None],
    timeout: float,
    what: str,
    interval: float = 0.02,
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:  # truthy: an empty list or 0 is not an answer yet
            return result  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise DesktopError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(interval)


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path | None


@dataclass
class TextWindow:
    """A real Qt text window (separate process) whose text the test can read back exactly.

    Every change is written to `content_file` (UTF-8, atomically), so `text()` returns exactly
    what the window holds — also CJK text that a screenshot without CJK fonts shows as boxes.
    With `terminal=True` it behaves like a terminal for paste: Ctrl+Shift+V pastes, plain
    Ctrl+V inserts the literal "^V".
    """

    session: DesktopSession
    process: subprocess.Popen[bytes]
    window_id: int
    content_file: Path
    title: str
    terminal: bool = False
    _closed: bool = field(default=False, repr=False)

    def text(self) -> str:
        try:
            return self.content_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return ""

    def wait_for_text(self, expected: str, timeout: float = 5.0) -> str:
        """Wait until the window holds exactly `expected`; AssertionError shows what it holds."""
        deadline = time.monotonic() + timeout
        while True:
            current = self.text()
            if current == expected:
                return current
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"text window holds {current!r}, expected {expected!r} (waited {timeout:.1f} s)"
                )
            time.sleep(0.01)

    def wait_for_change(self, old: str = "", timeout: float = 5.0) -> str:
        """Wait until the text differs from `old` and then stays the same for 0.1 s."""
        _wait_for(lambda: self.text() != old, timeout, "the text window to change")
        last, stable_since = self.text(), time.monotonic()
        while time.monotonic() - stable_since < 0.1:
            time.sleep(0.02)
            now = self.text()
            if now != last:
                last, stable_since = now, time.monotonic()
        return last

    def clear(self) -> None:
        self._command("clear")
        _wait_for(lambda: self.text() == "", 5.0, "the text window to clear")

    def focus(self) -> None:
        self.session.focus(self.window_id)

    def set_wm_class(self, instance: str, class_name: str) -> None:
        self.session.xdotool(
            "set_window", "--classname", instance, "--class", class_name, str(self.window_id)
        )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self._command("quit")
        try:
            self.process.wait(timeout=3)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=3)

    def _command(self, line: str) -> None:
        stdin = self.process.stdin
        if stdin is None or self.process.poll() is not None:
            raise DesktopError("the text window is not running")
        stdin.write(line.encode() + b"\n")
        stdin.flush()


@dataclass(frozen=True)
class WindowGeometry:
    """A viewable X window: its id, WM_CLASS and where it is on the screen."""

    id: int
    x: int  # root coordinates
    y: int
    width: int
    height: int
    wm_class: tuple[str, str] | None  # (instance, class)
    top_level: bool  # a child of the root (False: embedded, e.g. an icon in the tray)

    @property
    def center(self) -> tuple[int, int]:
        return self.x + self.width // 2, self.y + self.height // 2


class PipeMicrophone:
    """A capture source fed from a FIFO (PulseAudio's module-pipe-source, 16 kHz mono s16le)
    and made the default source: an app records it through the same server, ALSA plugin and
    PortAudio as the `vmic` microphone, but it delivers what is written as fast as it is
    written, so ten minutes of audio can be recorded in much less than ten minutes.

    A source with no data delivers nothing (a capture stream on it stalls, which an app
    rightly takes for a lost device), so a thread writes silence in real time whenever no
    clip is playing; `play(pcm, speed)` writes a clip paced at `speed` × real time instead.
    `stall()` stops all writing (a microphone that stops delivering without going away) until
    `resume()`.
    """

    BLOCK_S = 0.05

    def __init__(self, session: DesktopSession, name: str) -> None:
        self.session = session
        self.name = name
        self.fifo = session.root / f"{name}.fifo"
        session.run(
            ["pactl", "load-module", "module-pipe-source", f"source_name={name}",
             f"file={self.fifo}", "format=s16le", f"rate={MIC_RATE}", "channels=1"],
            capture=False,
        )  # fmt: skip
        session.run(["pactl", "set-default-source", name], capture=False)
        self._clips: list[tuple[bytes, float, threading.Event]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._stalled = threading.Event()
        self._fd = os.open(self.fifo, os.O_WRONLY)
        self._thread = threading.Thread(target=self._feed, name=f"{name}-feed", daemon=True)
        self._thread.start()

    def play(self, pcm: bytes, speed: float = 1.0) -> threading.Event:
        """Queue `pcm` (s16le 16 kHz mono) at `speed` × real time; the event is set once it
        has all been written."""
        done = threading.Event()
        with self._lock:
            self._clips.append((pcm, speed, done))
        return done

    def stall(self) -> None:
        self._stalled.set()

    def resume(self) -> None:
        self._stalled.clear()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with contextlib.suppress(OSError):
            os.close(self._fd)

    def _feed(self) -> None:
        block = int(MIC_RATE * self.BLOCK_S) * 2
        silence = bytes(block)
        due = time.monotonic()
        try:
            while not self._stop.is_set():
                if self._stalled.is_set():
                    time.sleep(self.BLOCK_S)
                    due = time.monotonic()
                    continue
                with self._lock:
                    clip = self._clips.pop(0) if self._clips else None
                if clip is None:
                    os.write(self._fd, silence)
                    due += self.BLOCK_S
                    time.sleep(max(0.0, due - time.monotonic()))
                    continue
                pcm, speed, done = clip
                view = memoryview(pcm)
                for start in range(0, len(view), block):
                    if self._stop.is_set():
                        return
                    while self._stalled.is_set() and not self._stop.is_set():
                        time.sleep(self.BLOCK_S)
                        due = time.monotonic()
                    os.write(self._fd, view[start : start + block])
                    due += self.BLOCK_S / speed
                    time.sleep(max(0.0, due - time.monotonic()))
                done.set()
        except OSError:
            if not self._stop.is_set():
                raise


# Sessions not closed yet (closed at interpreter exit if a test forgot to).
_LIVE_SESSIONS: set[DesktopSession] = set()

# A separate process that outlives us: when our end of its stdin pipe closes (close(), or this
# process died, even by SIGKILL) or the watchdog time is up, it stops every process with the
# marker. It carries no marker itself.
_REAPER = r"""
import os, select, signal, sys, time
marker, limit = sys.argv[1], float(sys.argv[2])
needle = ("\0%s=%s\0" % (sys.argv[3], marker)).encode()
select.select([0], [], [], limit)
def marked():
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid():
            try:
                with open("/proc/%s/environ" % name, "rb") as f:
                    if needle in b"\0" + f.read() + b"\0":
                        found.append(int(name))
            except OSError:
                pass
    return found
for sig, pause in ((signal.SIGTERM, 1.0), (signal.SIGKILL, 0.2), (signal.SIGKILL, 0.2)):
    pids = marked()
    if not pids:
        break
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    time.sleep(pause)
if len(sys.argv) > 4:
    import shutil
    shutil.rmtree(sys.argv[4], ignore_errors=True)
"""


def _close_live_sessions() -> None:
    for session in list(_LIVE_SESSIONS):
        with contextlib.suppress(Exception):
            session.close()


atexit.register(_close_live_sessions)


class DesktopSession:
    """A private desktop: Xvfb (+ trayer) (+ PulseAudio with a virtual microphone).

    Parameters
    - tray: start trayer and wait until it owns _NET_SYSTEM_TRAY_S0.
    - audio: start PulseAudio with the null sink `vmic_sink` (16 kHz mono) whose monitor is
      remapped to the default source `vmic` (the microphone the app records from), a default
      sink `speakers` (so app sounds do not leak into the mic), the silent keep-alive stream,
      and probe that a new capture gets data within 0.25 s.
    - watchdog_s: after this many seconds the session kills all its processes.
    - base_dir: where the session folder is made (default: a short path in /tmp, because
      the audio socket path must stay under 108 bytes). keep: leave the folder on close.
    """

    def __init__(
        self,
        *,
        tray: bool = True,
        audio: bool = True,
        screen: str = "1280x800x24",
        watchdog_s: float = 120.0,
        base_dir: Path | None = None,
        keep: bool = False,
    ) -> None:
        self.want_tray = tray
        self.want_audio = audio
        self.screen = screen
        self.watchdog_s = watchdog_s
        self.keep = keep
        self.marker = f"{os.getpid()}-{uuid.uuid4().hex[:10]}"
        self.root = Path(tempfile.mkdtemp(prefix="nd-desk-", dir=base_dir))
        self.home = self.root / "home"
        self.runtime_dir = self.root / "run"
        self.log_dir = self.root / "logs"
        self.display = ""
        self.display_number = -1
        self.pulse_server = ""
        self.timings: dict[str, float] = {}
        self.watchdog_fired = False
        self._processes: list[_Process] = []
        self._lock = threading.RLock()
        self._closed = False
        self._started = False
        self._watchdog: threading.Timer | None = None
        self._env: dict[str, str] = {}
        self._windows: list[TextWindow] = []
        self._reaper: subprocess.Popen[bytes] | None = None
        _LIVE_SESSIONS.add(self)

    # --- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> DesktopSession:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self) -> DesktopSession:
        if self._started:
            return self
        self._started = True
        missing = missing_tools(tray=self.want_tray, audio=self.want_audio)
        if missing:
            raise DesktopError(f"missing tools for a desktop session: {', '.join(missing)}")
        self._watchdog = threading.Timer(self.watchdog_s, self._on_watchdog)
        self._watchdog.daemon = True
        self._watchdog.start()
        self._reaper = subprocess.Popen(
            [sys.executable, "-c", _REAPER, self.marker, str(self.watchdog_s + 5), MARKER_ENV,
             *([] if self.keep else [str(self.root)])],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        for folder in (self.home, self.runtime_dir, self.log_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.runtime_dir.chmod(0o700)
        self._env = self._base_env()
        started = time.monotonic()
        self._start_x()
        if self.want_tray:
            self._start_tray()
        if self.want_audio:
            self._start_audio()
        self.timings["session_start"] = time.monotonic() - started
        return self

    def close(self) -> None:
        """Stop everything this session started; safe to call more than once."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        for window in self._windows:
            with contextlib.suppress(Exception):
                window.close()
        self._kill_all()
        if self.display_number >= 0:
            self._remove_stale_x_files()
        if self._reaper is not None:
            assert self._reaper.stdin is not None
            self._reaper.stdin.close()  # nothing is left for it to stop: it exits at once
            try:
                self._reaper.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._reaper.kill()
                self._reaper.wait()
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)
        _LIVE_SESSIONS.discard(self)

    @property
    def closed(self) -> bool:
        return self._closed

    def leftover_pids(self) -> list[int]:
        """Processes still carrying this session's marker (empty after a clean close)."""
        return pids_with_marker(self.marker)

    # --- environment and processes ------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        """A copy of the environment every process of this session gets (marker included)."""
        return dict(self._env)

    def apply_env(self, setter: Callable[[str, str], None] | Any) -> None:
        """Point this (test) process at the session: DISPLAY and PULSE_SERVER.

        Pass pytest's `monkeypatch` (its setenv is used) or any `setter(name, value)`. HOME
        and the marker are deliberately not applied to the test process itself.
        """
        setenv = getattr(setter, "setenv", setter)
        for name in ("DISPLAY", "PULSE_SERVER", "XDG_SESSION_TYPE"):
            if name in self._env:
                setenv(name, self._env[name])
        if hasattr(setter, "delenv"):
            setter.delenv("WAYLAND_DISPLAY", raising=False)

    def popen(
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        name: str,
        env: Mapping[str, str] | None = None,
        stdin: int | IO[bytes] | None = subprocess.DEVNULL,
        stdout: Path | None = None,
        cwd: Path | None = None,
        pass_fds: Sequence[int] = (),
    ) -> subprocess.Popen[bytes]:
        """Start a process in the session (its env + `env`), output to logs/<name>.log.

        It is stopped at close (SIGTERM to its process group, then SIGKILL). Its stdout (or
        the file `stdout`) and stderr go to files, never to a pipe, so a forking child cannot
        keep a pipe open.
        """
        self._check_open()
        log_path = self.log_dir / f"{name}.log"
        full_env = {**self._env, **(env or {})}
        full_env[MARKER_ENV] = self.marker
        with contextlib.ExitStack() as files:
            log = files.enter_context(open(log_path, "ab"))
            out = files.enter_context(open(stdout, "wb")) if stdout is not None else log
            process = subprocess.Popen(
                [os.fspath(arg) for arg in argv],
                env=full_env,
                stdin=stdin,
                stdout=out,
                stderr=log if stdout is not None else subprocess.STDOUT,
                cwd=cwd,
                start_new_session=True,
                pass_fds=tuple(pass_fds),
            )
        with self._lock:
            self._processes.append(_Process(name, process, log_path))
        return process

    def run(
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        timeout: float = 10.0,
        input: bytes | None = None,
        capture: bool = True,
        check: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run a short command in the session and wait for it (killed after `timeout`).

        With `capture`, stdout is a pipe: only for commands that do not fork a daemon.
        """
        self._check_open()
        full_env = {**self._env, **(env or {})}
        full_env[MARKER_ENV] = self.marker
        with open(self.log_dir / "commands.log", "ab") as log:
            log.write(f"$ {shlex.join(os.fspath(a) for a in argv)}\n".encode())
            log.flush()
            try:
                result = subprocess.run(
                    [os.fspath(arg) for arg in argv],
                    env=full_env,
                    input=input,
                    stdin=None if input is not None else subprocess.DEVNULL,
                    stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                    stderr=log,
                    timeout=timeout,
                    check=False,
                    start_new_session=True,
                )
            except subprocess.TimeoutExpired as exc:
                raise DesktopError(f"{shlex.join(map(str, argv))} timed out ({timeout} s)") from exc
        if check and result.returncode != 0:
            raise DesktopError(
                f"{shlex.join(map(str, argv))} failed with exit code {result.returncode}; "
                f"see {self.log_dir / 'commands.log'}"
            )
        return result

    @staticmethod
    def wait_for(
        predicate: Callable[[], T | bool | None], timeout: float, what: str, interval: float = 0.02
    ) -> T:
        """Poll `predicate` until it returns something truthy (returned); DesktopError naming
        `what` after `timeout` seconds."""
        return _wait_for(predicate, timeout, what, interval)

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.log_dir / f"{name}.log"
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def describe(self, lines: int = 20) -> str:
        """Display, folders and the tail of every log: print it when a test fails."""
        parts = [f"desktop session {self.marker}: DISPLAY={self.display} root={self.root}"]
        if self.log_dir.exists():
            for log in sorted(self.log_dir.glob("*.log")):
                tail = self.log_tail(log.stem, lines)
                if tail.strip():
                    parts.append(f"--- {log.name} (last {lines} lines)\n{tail}")
        return "\n".join(parts)

    # --- X ------------------------------------------------------------------------------------

    def xdotool(self, *args: str | int, timeout: float = 10.0) -> str:
        """Run xdotool in the session; returns its stdout (stripped)."""
        result = self.run(["xdotool", *map(str, args)], timeout=timeout)
        return result.stdout.decode(errors="replace").strip()

    def key(self, *keys: str) -> None:
        """Press and release keys through XTest, e.g. key("ctrl+v")."""
        self.xdotool("key", "--clearmodifiers", *keys)

    def hold(
        self, keys: str, seconds: float, *, during: Callable[[], object] | None = None
    ) -> None:
        """Hold `keys` (xdotool syntax, e.g. "ctrl+alt+space") for `seconds`, running `during`
        (if given) right after the press; the release comes `seconds` after the press."""
        self.xdotool("keydown", keys)
        pressed = time.monotonic()
        try:
            if during is not None:
                during()
            remaining = seconds - (time.monotonic() - pressed)
            if remaining > 0:
                time.sleep(remaining)
        finally:
            self.xdotool("keyup", keys)

    def focus(self, window: TextWindow | int) -> None:
        """Give `window` the input focus (XSetInputFocus: works without a window manager)."""
        window_id = window.window_id if isinstance(window, TextWindow) else int(window)

        def try_focus() -> bool:
            try:
                self.xdotool("windowfocus", "--sync", window_id, timeout=3)
            except DesktopError:
                return False
            return self.focused_window_id() == window_id

        _wait_for(try_focus, 5.0, f"window 0x{window_id:x} to take focus", interval=0.05)

    def focused_window_id(self) -> int:
        out = self.xdotool("getwindowfocus")
        return int(out) if out.isdigit() else 0

    def screenshot(self, path: Path) -> Path:
        """Save the whole screen as PNG (imagemagick). CJK text shows as boxes without CJK
        fonts: check text through TextWindow.text(), not the picture."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.run(["import", "-window", "root", str(path)], timeout=20, capture=False)
        return path

    def windows(self, wm_class: str | None = None) -> list[WindowGeometry]:
        """Viewable windows (any depth) whose WM_CLASS instance or class is `wm_class` (all
        viewable windows with a WM_CLASS when None), in stacking order, bottom first."""
        from Xlib import X
        from Xlib import display as xdisplay
        from Xlib import error as xerror

        display = xdisplay.Display(self.display)
        found: list[WindowGeometry] = []
        try:
            root = display.screen().root

            def walk(window: Any) -> None:
                try:
                    children = window.query_tree().children
                except xerror.XError:
                    return
                for child in children:
                    try:
                        if child.get_attributes().map_state != X.IsViewable:
                            continue
                        classes = child.get_wm_class()
                        geometry = child.get_geometry()
                        origin = root.translate_coords(child, 0, 0)
                    except xerror.XError:  # gone meanwhile
                        continue
                    if classes is not None and (wm_class is None or wm_class in classes):
                        found.append(
                            WindowGeometry(
                                int(child.id), int(origin.x), int(origin.y),
                                int(geometry.width), int(geometry.height),
                                (str(classes[0]), str(classes[1])), window == root,
                            )
                        )  # fmt: skip
                    walk(child)

            walk(root)
        finally:
            display.close()
        return found

    def tray_icon(self, wm_class: str, timeout: float = 10.0) -> WindowGeometry:
        """The icon a program (by WM_CLASS) has embedded in the tray, once it is there."""

        def embedded() -> WindowGeometry | None:
            icons = [w for w in self.windows(wm_class) if not w.top_level and w.width > 1]
            return icons[0] if icons else None

        return _wait_for(embedded, timeout, f"a tray icon of {wm_class!r}", interval=0.05)

    def screenshot_window(self, window: WindowGeometry | int, path: Path) -> Path:
        """Save one window (its current pixels on screen) as PNG."""
        window_id = window.id if isinstance(window, WindowGeometry) else int(window)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.run(["import", "-window", str(window_id), str(path)], timeout=20, capture=False)
        return path

    def tray_owner(self) -> int:
        """Window id that owns _NET_SYSTEM_TRAY_S0 (0 when no tray host)."""
        from Xlib import display as xdisplay

        display = xdisplay.Display(self.display)
        try:
            owner = display.get_selection_owner(display.intern_atom("_NET_SYSTEM_TRAY_S0"))
            return 0 if isinstance(owner, int) else int(owner.id)
        finally:
            display.close()

    def open_text_window(
        self,
        *,
        title: str = "nanodictate test window",
        terminal: bool = False,
        wm_class: tuple[str, str] | None = None,
        focus: bool = True,
        timeout: float = 15.0,
    ) -> TextWindow:
        """Start a Qt text window (its own process) and, by default, focus it.

        `terminal=True` makes it paste on Ctrl+Shift+V like a terminal (and sets WM_CLASS
        xterm/XTerm unless `wm_class` is given).
        """
        self._check_open()
        index = len(self._windows)
        content = self.root / f"text-window-{index}.txt"
        ready = self.root / f"text-window-{index}.ready"
        argv = [
            sys.executable,
            str(_HERE),
            "text-window",
            "--content-file",
            str(content),
            "--ready-file",
            str(ready),
            "--title",
            title,
        ]
        if terminal:
            argv.append("--terminal")
        process = self.popen(
            argv,
            name=f"text-window-{index}",
            stdin=subprocess.PIPE,
            env={"QT_QPA_PLATFORM": "xcb"},
        )

        def ready_id() -> int | None:
            if process.poll() is not None:
                raise DesktopError(
                    f"the text window exited ({process.returncode}):\n"
                    + self.log_tail(f"text-window-{index}")
                )
            text = ready.read_text().strip() if ready.exists() else ""
            return int(text) if text.isdigit() else None

        window_id = _wait_for(ready_id, timeout, "the text window to appear")
        window = TextWindow(self, process, window_id, content, title, terminal)
        self._windows.append(window)
        if wm_class is None and terminal:
            wm_class = ("xterm", "XTerm")
        if wm_class is not None:
            window.set_wm_class(*wm_class)
        if focus:
            window.focus()
        return window

    # --- clipboard ----------------------------------------------------------------------------

    def set_clipboard_text(self, text: str, *, selection: str = "clipboard") -> None:
        """Own the clipboard with `text` (xclip) and wait until it reads back (xclip takes the
        selection in a forked child after it returns)."""
        self.run(
            ["xclip", "-selection", selection, "-i", "-t", "UTF8_STRING"],
            input=text.encode("utf-8"),
            capture=False,
        )
        _wait_for(
            lambda: self.read_clipboard_text(selection=selection) == text,
            5.0,
            "the clipboard to hold the new text",
        )

    def freeze_clipboard_owner(self, text: str, *, selection: str = "clipboard") -> int:
        """Own the clipboard with `text` (xclip), then stop that owner (SIGSTOP): a program
        that hangs while it holds the clipboard, so nobody's request for the content is ever
        answered. Returns the owner's PID; `thaw` it (SIGCONT), or close() ends it."""
        self.set_clipboard_text(text, selection=selection)
        owners = [pid for pid in pids_with_marker(self.marker) if _command_name(pid) == "xclip"]
        if len(owners) != 1:
            raise DesktopError(f"expected one xclip owning the {selection}, found {owners}")
        os.kill(owners[0], signal.SIGSTOP)
        _wait_for(lambda: _process_state(owners[0]) == "T", 5.0, "the clipboard owner to stop")
        return owners[0]

    @staticmethod
    def thaw(pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)

    def set_clipboard_image(self, png_path: Path, *, selection: str = "clipboard") -> None:
        """Own the clipboard with a PNG image (target image/png)."""
        data = Path(png_path).read_bytes()
        self.run(
            ["xclip", "-selection", selection, "-i", "-t", "image/png"], input=data, capture=False
        )
        _wait_for(
            lambda: self.read_clipboard("image/png", selection=selection) == data,
            5.0,
            "the clipboard to hold the image",
        )

    def read_clipboard(
        self, target: str = "UTF8_STRING", *, selection: str = "clipboard"
    ) -> bytes | None:
        """The clipboard's content as `target` (e.g. "UTF8_STRING", "image/png", "TARGETS"),
        or None when nobody owns it or it has no such target."""
        result = self.run(
            ["xclip", "-selection", selection, "-o", "-t", target], timeout=5.0, check=False
        )
        return result.stdout if result.returncode == 0 else None

    def read_clipboard_text(self, *, selection: str = "clipboard") -> str | None:
        data = self.read_clipboard("UTF8_STRING", selection=selection)
        return None if data is None else data.decode("utf-8", errors="replace")

    def clipboard_targets(self, *, selection: str = "clipboard") -> list[str]:
        data = self.read_clipboard("TARGETS", selection=selection)
        return [] if data is None else data.decode(errors="replace").split()

    # --- audio --------------------------------------------------------------------------------

    def speak_to_wav(self, text: str, path: Path, *, voice: str = "en", speed: int = 150) -> Path:
        """Write `text` spoken by espeak-ng to `path` (WAV, 22050 Hz mono)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.run(
            ["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), "--", text],
            timeout=60,
            capture=False,
        )
        return path

    def play_speech(
        self, wav_path: Path, *, wait: bool = True, timeout: float = 120.0
    ) -> subprocess.Popen[bytes] | None:
        """Play a sound file into the virtual microphone (paplay --device=vmic_sink).

        Blocks until it has played, or with `wait=False` returns the running process.
        """
        self._require_audio()
        argv = ["paplay", f"--device={MIC_SINK}", str(wav_path)]
        if wait:
            self.run(argv, timeout=timeout, capture=False)
            return None
        return self.popen(argv, name="paplay")

    def record_mic(self, seconds: float) -> bytes:
        """Record the virtual microphone (`vmic`) for `seconds`: s16le 16 kHz mono bytes."""
        self._require_audio()
        out = self.root / f"record-{time.monotonic_ns()}.raw"
        recorder = self.popen(
            ["parec", "--raw", "--format=s16le", f"--rate={MIC_RATE}", "--channels=1",
             "--latency-msec=20", f"--device={MIC_SOURCE}"],
            name="parec", stdout=out,
        )  # fmt: skip
        time.sleep(seconds)
        recorder.terminate()
        recorder.wait(timeout=5)
        data = out.read_bytes()
        out.unlink()
        return data

    def capture_start_delay(self, timeout: float = 3.0) -> float:
        """Seconds from starting a new capture stream on the mic to its first data."""
        self._require_audio()
        env = {**self._env, MARKER_ENV: self.marker}
        started = time.monotonic()
        process = subprocess.Popen(
            ["parec", "--raw", "--format=s16le", f"--rate={MIC_RATE}", "--channels=1",
             "--latency-msec=20", f"--device={MIC_SOURCE}"],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        try:
            assert process.stdout is not None
            ready, _, _ = select.select([process.stdout], [], [], timeout)
            delay = time.monotonic() - started
            return delay if ready else float("inf")
        finally:
            process.kill()
            process.wait(timeout=5)
            if process.stdout is not None:
                process.stdout.close()

    # --- audio faults -------------------------------------------------------------------------
    # What a user's audio system does to a running app: the server stops (crash, `pulseaudio
    # -k`, a logout of the sound session), the only microphone is unplugged, and both come back.

    def stop_audio_server(self) -> None:
        """Stop PulseAudio (SIGTERM, as `pulseaudio -k` does): every stream on it ends, and
        clients find no server until `start_audio_server`."""
        self._require_audio()
        for entry in self._audio_processes():
            if entry.popen.poll() is None:
                entry.popen.terminate()
        for entry in self._audio_processes():
            try:
                entry.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                entry.popen.kill()
                entry.popen.wait(timeout=5)
        _wait_for(
            lambda: self.run(["pactl", "info"], timeout=5, check=False).returncode != 0,
            5.0,
            "PulseAudio to stop answering",
        )

    def start_audio_server(self) -> None:
        """Start PulseAudio again on the same socket, with the virtual mic as at start."""
        self._require_audio()
        self._start_audio()

    def unplug_microphone(self) -> None:
        """Remove every capture source, as unplugging the only microphone does.

        PulseAudio moves a capture stream whose source goes to the next default source, and
        every sink's monitor is a source: so the sinks (whose monitors it would fall back
        to) go too. A capture stream then ends; a new one cannot open.
        """
        self._require_audio()
        modules = self.run(["pactl", "list", "short", "modules"]).stdout.decode()
        for line in reversed(modules.splitlines()):
            index, name, *_ = line.split("\t")
            if name in ("module-remap-source", "module-null-sink"):
                self.run(["pactl", "unload-module", index], capture=False)
        sources = self.run(["pactl", "list", "short", "sources"]).stdout.decode().strip()
        if sources:
            raise DesktopError(f"capture sources left after unplugging: {sources}")

    def plug_microphone(self) -> None:
        """The virtual mic (and the speakers) back, as at start: the undo of `unplug_microphone`."""
        self._require_audio()
        started = time.monotonic()
        for module in (
            f"module-null-sink sink_name={SPEAKER_SINK}",
            f"module-null-sink sink_name={MIC_SINK} rate={MIC_RATE} channels=1",
            f"module-remap-source source_name={MIC_SOURCE} master={MIC_SINK}.monitor",
        ):
            self.run(["pactl", "load-module", *module.split()], capture=False)
        self._mic_ready(started)

    def pipe_microphone(self, name: str = "vmic_pipe") -> PipeMicrophone:
        """A second virtual mic, fed by the test at any speed, made the default source."""
        self._require_audio()
        return PipeMicrophone(self, name)

    def _audio_processes(self) -> list[_Process]:
        with self._lock:
            return [p for p in self._processes if p.name in ("pulseaudio", "pacat-keepalive")]

    # --- internals: start-up ------------------------------------------------------------------

    def _base_env(self) -> dict[str, str]:
        env = {
            name: value
            for name, value in os.environ.items()
            if name not in _DROPPED_ENV and not name.startswith(_DROPPED_ENV_PREFIXES)
        }
        env.update(
            {
                MARKER_ENV: self.marker,
                "HOME": str(self.home),
                "XDG_RUNTIME_DIR": str(self.runtime_dir),
                "XDG_CONFIG_HOME": str(self.home / ".config"),
                "XDG_DATA_HOME": str(self.home / ".local" / "share"),
                "XDG_CACHE_HOME": str(self.home / ".cache"),
                "XDG_STATE_HOME": str(self.home / ".local" / "state"),
                "XDG_SESSION_TYPE": "x11",
                "TMPDIR": str(self.root),
                "LANG": "C.UTF-8",
                "LC_ALL": "C.UTF-8",
                "NO_AT_BRIDGE": "1",
                "QT_ACCESSIBILITY": "0",
            }
        )
        return env

    def _start_x(self) -> None:
        started = time.monotonic()
        read_fd, write_fd = os.pipe()
        try:
            self.popen(
                ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", self.screen,
                 "-nolisten", "tcp", "-noreset"],
                name="Xvfb", pass_fds=(write_fd,),
            )  # fmt: skip
            os.close(write_fd)
            write_fd = -1
            number = b""
            deadline = time.monotonic() + 10.0
            while not number.endswith(b"\n"):
                remaining = deadline - time.monotonic()
                ready, _, _ = select.select([read_fd], [], [], max(0.0, remaining))
                if not ready:
                    tail = self.log_tail("Xvfb")
                    raise DesktopError(f"Xvfb did not report its display within 10 s:\n{tail}")
                chunk = os.read(read_fd, 64)
                if not chunk:
                    raise DesktopError("Xvfb exited at start-up:\n" + self.log_tail("Xvfb"))
                number += chunk
        finally:
            os.close(read_fd)
            if write_fd >= 0:
                os.close(write_fd)
        self.display_number = int(number.strip())
        self.display = f":{self.display_number}"
        self._env["DISPLAY"] = self.display
        self.timings["x_start"] = time.monotonic() - started

    def _start_tray(self) -> None:
        started = time.monotonic()
        self.popen(
            ["trayer", "--edge", "top", "--align", "right", "--SetDockType", "true",
             "--SetPartialStrut", "true", "--expand", "true", "--widthtype", "request",
             "--height", "24", "--transparent", "false", "--tint", "0x333333"],
            name="trayer",
        )  # fmt: skip
        _wait_for(lambda: self.tray_owner() or None, 10.0, "trayer to own _NET_SYSTEM_TRAY_S0")
        self.timings["tray_ready"] = time.monotonic() - started

    def _start_audio(self) -> None:
        started = time.monotonic()
        socket_path = self.runtime_dir / "pulse.sock"
        self.pulse_server = f"unix:{socket_path}"
        self._env["PULSE_SERVER"] = self.pulse_server
        self.popen(
            [
                "pulseaudio", "--daemonize=no", "-n", "--exit-idle-time=-1",
                "--disallow-exit", "--log-target=stderr", "--log-level=notice",
                "-L", f"module-native-protocol-unix auth-anonymous=1 socket={socket_path}",
                "-L", f"module-null-sink sink_name={SPEAKER_SINK}",
                "-L", f"module-null-sink sink_name={MIC_SINK} rate={MIC_RATE} channels=1",
                "-L", f"module-remap-source source_name={MIC_SOURCE} master={MIC_SINK}.monitor",
            ],
            name="pulseaudio",
        )  # fmt: skip

        def pulse_answers() -> bool:
            return self.run(["pactl", "info"], timeout=5, check=False).returncode == 0

        _wait_for(pulse_answers, 10.0, "PulseAudio to answer", interval=0.05)
        self.timings["audio_server"] = time.monotonic() - started
        self._mic_ready(started)

    def _mic_ready(self, started: float) -> None:
        """Defaults, the keep-alive stream, and the probe that a new capture starts at once."""
        self.run(["pactl", "set-default-sink", SPEAKER_SINK], capture=False)
        self.run(["pactl", "set-default-source", MIC_SOURCE], capture=False)
        # A silent low-latency stream keeps the null sink rendering in small blocks, so a new
        # capture stream starts getting data at once instead of 0.14–2 s late.
        self.popen(
            ["pacat", "-p", "--raw", "--format=s16le", f"--rate={MIC_RATE}", "--channels=1",
             "--latency-msec=20", f"--device={MIC_SINK}", "/dev/zero"],
            name="pacat-keepalive",
        )  # fmt: skip
        probes: list[float] = []
        deadline = time.monotonic() + 10.0
        while True:
            delay = self.capture_start_delay()
            probes.append(delay)
            if delay <= 0.25:
                break
            if time.monotonic() >= deadline:
                raise DesktopError(
                    "a new capture on the virtual mic keeps starting late: "
                    + ", ".join(f"{p:.2f} s" for p in probes)
                )
            time.sleep(0.1)
        self.timings["capture_start_delay"] = probes[-1]
        self.timings["audio_ready"] = time.monotonic() - started

    # --- internals: shutdown ------------------------------------------------------------------

    def _on_watchdog(self) -> None:
        self.watchdog_fired = True
        print(
            f"\n[desktop harness] session {self.marker} ran past {self.watchdog_s:.0f} s: "
            "killing its processes",
            file=sys.stderr,
        )
        self._kill_all()

    def _kill_all(self) -> None:
        with self._lock:
            processes = list(reversed(self._processes))
        for entry in processes:  # polite first, newest first (the X server last)
            if entry.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(entry.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + 3.0
        for entry in processes:
            remaining = max(0.0, deadline - time.monotonic())
            try:
                entry.popen.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(entry.popen.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    entry.popen.wait(timeout=2.0)
            for stream in (entry.popen.stdin, entry.popen.stdout, entry.popen.stderr):
                if stream is not None:
                    with contextlib.suppress(Exception):
                        stream.close()
        # Daemonised children (xclip's forked owner, anything the app spawned) by marker.
        for _ in range(5):
            leftover = pids_with_marker(self.marker)
            if not leftover:
                break
            for pid in leftover:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)

    def _remove_stale_x_files(self) -> None:
        """Xvfb removes its lock and socket on SIGTERM; after a SIGKILL we do it."""
        lock = Path(f"/tmp/.X{self.display_number}-lock")
        xvfb = next((p for p in self._processes if p.name == "Xvfb"), None)
        try:
            owner = int(lock.read_text().strip())
        except (OSError, ValueError):
            return
        if xvfb is not None and owner == xvfb.popen.pid:
            lock.unlink(missing_ok=True)
            Path(f"/tmp/.X11-unix/X{self.display_number}").unlink(missing_ok=True)

    def _check_open(self) -> None:
        if self._closed:
            raise DesktopError("the desktop session is closed")
        if not self._started:
            raise DesktopError("the desktop session is not started (use it in a with block)")

    def _require_audio(self) -> None:
        if not self.want_audio:
            raise DesktopError("this session has no audio (DesktopSession(audio=True))")


# ---------------------------------------------------------------------------------------------
# The text window process (python harness.py text-window ...)
# ---------------------------------------------------------------------------------------------


def _text_window_main(argv: list[str]) -> int:
    import argparse

    from PySide6.QtCore import QEvent, QObject, QSocketNotifier, Qt, QTimer
    from PySide6.QtGui import QKeyEvent
    from PySide6.QtWidgets import QApplication, QPlainTextEdit

    parser = argparse.ArgumentParser(prog="harness.py text-window")
    parser.add_argument("--content-file", type=Path, required=True)
    parser.add_argument("--ready-file", type=Path, required=True)
    parser.add_argument("--title", default="nanodictate test window")
    parser.add_argument("--terminal", action="store_true")
    args = parser.parse_args(argv)

    app = QApplication(["nanodictate-text-window"])
    edit = QPlainTextEdit()
    edit.setWindowTitle(args.title)
    edit.resize(640, 360)
    edit.move(40, 80)

    def save() -> None:
        tmp = args.content_file.with_name(args.content_file.name + ".tmp")
        tmp.write_text(edit.toPlainText(), encoding="utf-8")
        os.replace(tmp, args.content_file)

    edit.textChanged.connect(save)
    save()

    class TerminalKeys(QObject):
        """Paste like a terminal: Ctrl+Shift+V pastes, Ctrl+V inserts a literal ^V."""

        def eventFilter(self, watched: QObject, event: QEvent) -> bool:
            if event.type() == QEvent.Type.KeyPress and isinstance(event, QKeyEvent):
                mods = event.modifiers()
                ctrl = bool(mods & Qt.KeyboardModifier.ControlModifier)
                shift = bool(mods & Qt.KeyboardModifier.ShiftModifier)
                if ctrl and event.key() == Qt.Key.Key_V:
                    if shift:
                        edit.paste()
                    else:
                        edit.insertPlainText("^V")
                    return True
            return False

    terminal_keys = TerminalKeys()
    if args.terminal:
        edit.installEventFilter(terminal_keys)

    buffer = bytearray()

    def on_stdin() -> None:
        data = os.read(0, 4096)
        if not data:
            app.quit()  # the harness went away
            return
        buffer.extend(data)
        while b"\n" in buffer:
            line, _, rest = bytes(buffer).partition(b"\n")
            buffer[:] = rest
            command = line.decode().strip()
            if command == "clear":
                edit.clear()
            elif command == "quit":
                app.quit()

    notifier = QSocketNotifier(0, QSocketNotifier.Type.Read)
    notifier.activated.connect(on_stdin)

    def announce_when_exposed() -> None:
        handle = edit.windowHandle()
        if handle is not None and handle.isExposed():
            edit.setFocus()
            args.ready_file.write_text(str(int(edit.winId())))
        else:
            QTimer.singleShot(10, announce_when_exposed)

    edit.show()
    QTimer.singleShot(0, announce_when_exposed)
    return int(app.exec())


if __name__ == "__main__":
    if sys.argv[1:2] == ["text-window"]:
        sys.exit(_text_window_main(sys.argv[2:]))
    print(__doc__)
    sys.exit(2)
