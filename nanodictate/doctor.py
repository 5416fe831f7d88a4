"""``nanodictate doctor``: what works on this machine and what does not, one line each.

The lines are meant to be pasted into a bug report: versions, devices, folders and reasons,
never dictated text (the history is not opened). Each check is a small function returning
`Check`s; one that fails to run reports its exception instead of stopping the others. torch
is imported in a child process: it takes seconds, and a broken CUDA build must not take the
report down with it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nanodictate import __version__

OK, WARN, FAIL, INFO = "ok", "warn", "FAIL", "info"
_TORCH_PROBE = """
import json, torch
gpus = []
if torch.cuda.is_available():
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        gpus.append(f"{p.name} (compute {p.major}.{p.minor}, {p.total_memory / 2**30:.1f} GiB)")
print(json.dumps({"torch": torch.__version__, "cuda": torch.version.cuda, "gpus": gpus}))
"""


@dataclass(frozen=True)
class Check:
    status: str  # OK, WARN, FAIL or INFO
    topic: str
    text: str

    def line(self) -> str:
        return f"[{self.status:>4}] {self.topic}: {self.text}"


def _settings() -> Any:
    """The user's settings, read only: a missing file gives the defaults without creating one."""
    from nanodictate import settings as S

    class Defaults:
        def get(self, setting: Any) -> Any:
            return setting.default

    if not S.settings_file().is_file():
        return Defaults()
    from nanodictate.ui.settings_store import IniFileStore

    return S.Settings(open_store=IniFileStore)


def check_app() -> list[Check]:
    from nanodictate.core.runtime_install import installed_layout

    layout = installed_layout()
    where = f"installed in {layout.app_dir}" if layout else "from source or pip"
    return [
        Check(INFO, "nanodictate", f"{__version__} ({where})"),
        Check(INFO, "system", f"{platform.platform()}, Python {platform.python_version()}"),
    ]


def check_audio(settings: Any) -> list[Check]:
    import sounddevice

    from nanodictate import settings as S
    from nanodictate.core.audio_devices import list_input_devices

    devices = list_input_devices(sounddevice)
    if not devices:
        return [Check(FAIL, "audio", "no microphone found (is the audio server running?)")]
    names = ", ".join(f"{d.name}{' (default)' if d.is_default else ''}" for d in devices)
    checks = [Check(OK, "audio", f"{len(devices)} input device(s): {names}")]
    chosen = settings.get(S.MICROPHONE)
    if not chosen:
        checks.append(Check(OK, "microphone", "the system default"))
    elif any(d.name == chosen for d in devices):
        checks.append(Check(OK, "microphone", f"{chosen!r} is present"))
    else:
        checks.append(Check(FAIL, "microphone", f"the chosen {chosen!r} is not connected"))
    return checks


def _hotkey_conflicts(backends: Any, settings: Any) -> list[Check]:
    """Grab each configured hotkey once and let it go: a key another program holds is told."""
    from nanodictate import settings as S
    from nanodictate.core.hotkeys import Hotkey
    from nanodictate.platform import HotkeyTakenError

    checks = []
    backends.hotkeys.start(lambda *_event: None)
    for setting in (S.HOTKEY_DICTATE, S.HOTKEY_TOGGLE):
        text = settings.get(setting)
        if not text:
            continue
        try:
            backends.hotkeys.register(setting.name, Hotkey.parse(text))
            backends.hotkeys.unregister(setting.name)
            checks.append(Check(OK, "hotkey", f"{text} is free"))
        except HotkeyTakenError:
            note = "another program (or a running nanodictate) holds it"
            checks.append(Check(WARN, "hotkey", f"{text}: {note}"))
    return checks


def _tray_host(backends: Any) -> Check:
    if backends.name != "x11":
        return Check(INFO, "tray", f"not checked on {backends.name}")
    from Xlib import display

    connection = display.Display()
    try:
        selection = f"_NET_SYSTEM_TRAY_S{connection.get_default_screen()}"
        owner = connection.get_selection_owner(connection.intern_atom(selection))
    finally:
        connection.close()
    if getattr(owner, "id", owner):
        return Check(OK, "tray", "a tray host is running")
    return Check(FAIL, "tray", "no tray host: the icon will not show (install a tray extension)")


def _paste_path(backends: Any, settings: Any) -> Check:
    from nanodictate import settings as S

    method = settings.get(S.PASTE_METHOD)
    tool = {"x11": "xclip", "wayland": "wl-copy"}.get(backends.name)
    missing = tool is not None and shutil.which(tool) is None
    text = f"{method} through {backends.keyboard.name} on {backends.name}"
    if missing:
        return Check(WARN, "paste", f"{text}; {tool} is not installed")
    return Check(OK, "paste", text)


def check_desktop(settings: Any) -> list[Check]:
    from nanodictate.platform import select_backends

    backends = select_backends()
    try:
        available, reason = backends.hotkeys.availability()
        checks = [Check(OK if available else WARN, "hotkeys", f"{backends.hotkeys.name}: {reason}")]
        checks += [Check(WARN, "desktop", note) for note in backends.notes if note != reason]
        if available:
            checks += _hotkey_conflicts(backends, settings)
        checks += [_tray_host(backends), _paste_path(backends, settings)]
        return checks
    finally:
        backends.close()


def check_torch(python: str = sys.executable) -> list[Check]:
    from nanodictate.core.acceleration import choose_variant, survey
    from nanodictate.core.runtime_install import InstallState, installed_layout, system_name

    choice = choose_variant(survey(), system_name())
    checks = [Check(INFO, "GPU seen", f"{choice.reason}; best build here: {choice.variant.label}")]
    if choice.warning:
        checks.append(Check(WARN, "GPU seen", choice.warning))
    layout = installed_layout()
    if layout is not None:
        state = InstallState.load(layout.state_file)
        checks.append(Check(INFO, "runtime", f"torch variant {state.variant or 'none yet'}"))
        for name, problem in state.failed_variants.items():
            checks.append(Check(WARN, "runtime", f"{name} failed here before: {problem}"))
    try:
        result = subprocess.run(
            [python, "-c", _TORCH_PROBE], capture_output=True, text=True, timeout=300, check=True
        )
        found = json.loads(result.stdout.strip().splitlines()[-1])
    except subprocess.CalledProcessError as error:
        lines = (error.stderr or "").strip().splitlines()
        return [*checks, Check(FAIL, "torch", lines[-1] if lines else "import failed")]
    gpus = "; ".join(found["gpus"]) or "no GPU usable (CPU only)"
    cuda = f"CUDA {found['cuda']}" if found["cuda"] else "CPU build"
    return [*checks, Check(OK, "torch", f"{found['torch']} ({cuda}): {gpus}")]


def check_models(settings: Any) -> list[Check]:
    from nanodictate import settings as S
    from nanodictate.core.models.store import MODELS_DIR_ENV, default_models_dir, describe_models

    chosen = settings.get(S.MODEL_DIR).strip()
    models_dir = (
        Path(chosen).expanduser() if chosen and not os.environ.get(MODELS_DIR_ENV) else None
    ) or default_models_dir()
    checks = []
    for status in describe_models(models_dir):
        level = OK if status.installed else FAIL
        checks.append(
            Check(level, "model", f"{status.display_name}: {status.state} ({status.folder})")
        )
    return checks


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_resources() -> list[Check]:
    import psutil

    from nanodictate.core.models.store import default_models_dir, human_size

    folder = _existing(default_models_dir())
    free = shutil.disk_usage(folder).free
    memory = psutil.virtual_memory()
    disk_level = OK if free > 3 * 10**9 else WARN  # the model is ≈2 GB, its INT8 cache more
    memory_level = OK if memory.available > 2 * 10**9 else WARN
    return [
        Check(disk_level, "disk", f"{human_size(free)} free at {folder}"),
        Check(
            memory_level,
            "memory",
            f"{human_size(memory.available)} available of {human_size(memory.total)}",
        ),
    ]


def run_checks(checks: Iterable[tuple[str, Callable[[], list[Check]]]]) -> list[Check]:
    found = []
    for topic, check in checks:
        try:
            found += check()
        except Exception as error:  # a check that cannot run is itself a finding
            found.append(Check(FAIL, topic, f"check failed: {type(error).__name__}: {error}"))
    return found


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-torch", action="store_true", help="skip the torch import check")
    parser.add_argument("--no-desktop", action="store_true", help="skip hotkeys, tray and paste")


def report(*, torch: bool = True, desktop: bool = True) -> list[Check]:
    settings = _settings()
    checks: list[tuple[str, Callable[[], list[Check]]]] = [
        ("nanodictate", check_app),
        ("audio", lambda: check_audio(settings)),
    ]
    if desktop:
        checks.append(("desktop", lambda: check_desktop(settings)))
    if torch:
        checks.append(("torch", check_torch))
    checks += [("model", lambda: check_models(settings)), ("resources", check_resources)]
    return run_checks(checks)


def run(args: argparse.Namespace) -> int:
    """Print the report; exit status 1 when any check failed."""
    # The platform logs its choice for the app's log file; here the report says it once.
    logging.getLogger("nanodictate").addHandler(logging.NullHandler())
    found = report(torch=not args.no_torch, desktop=not args.no_desktop)
    print("\n".join(check.line() for check in found))
    return 1 if any(check.status == FAIL for check in found) else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="nanodictate doctor", description=__doc__.split("\n")[0])
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
