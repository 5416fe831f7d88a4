"""The installed app's runtime folder, filled and updated with the `uv` the installer carries.

One code path for the Linux installer, the Windows installer, `nanodictate update` and the
acceleration step, so each does the same three things: the locked dependencies, then one
torch build (a variant of `core.acceleration`), then a check that it works. The installers
create the virtual environment and put the app's wheel in it, then run
``<runtime python> -m nanodictate.core.runtime_install install --variant cpu``.

Layout of an installed app (`app_dir`: ``~/.local/share/nanodictate/app`` on Linux,
``%LOCALAPPDATA%\\nanodictate\\app`` on Windows)::

    uv[.exe]            the installer's uv
    locks/<system>.txt  the pinned dependencies without torch (packaging/locks)
    runtime/            the virtual environment the app runs in
    install.json        app version, torch variant, lock digest, variants that failed here

Standard library only: this runs before the dependencies are installed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nanodictate import __version__
from nanodictate.core.acceleration import CPU, TORCH_VERSION, Variant, variant_named

log = logging.getLogger(__name__)

# Tests only: a folder of wheels holding torch, used instead of PyTorch's index, so CI installs
# the CPU build from disk instead of downloading it.
TORCH_FIND_LINKS_ENV = "NANODICTATE_TORCH_FIND_LINKS"
STATE_NAME = "install.json"
# One CUDA operation, in a fresh process: a build without kernels for this GPU fails here
# ("no kernel image"), not in the user's first dictation.
_VERIFY_GPU = (
    "import torch; x = torch.ones(8, device='cuda'); "
    "print(float((x * 2).sum()), torch.version.cuda, torch.cuda.get_device_name(0))"
)
_VERIFY_CPU = "import torch; print(float(torch.ones(8).sum()), torch.__version__)"

Run = Callable[[Sequence[str], Mapping[str, str]], "subprocess.CompletedProcess[str]"]
# `update --check` exits with this when the lock changed (the Windows installer then asks).
EXIT_LOCK_CHANGED = 3


def system_name(platform: str = sys.platform) -> str:
    return "windows" if platform.startswith("win") else "linux"


@dataclass(frozen=True)
class Layout:
    app_dir: Path
    system: str  # "linux" or "windows"

    @property
    def uv(self) -> Path:
        return self.app_dir / ("uv.exe" if self.system == "windows" else "uv")

    @property
    def runtime(self) -> Path:
        return self.app_dir / "runtime"

    @property
    def python(self) -> Path:
        if self.system == "windows":
            return self.runtime / "Scripts" / "python.exe"
        return self.runtime / "bin" / "python"

    @property
    def lock_file(self) -> Path:
        return self.app_dir / "locks" / f"{self.system}.txt"

    @property
    def state_file(self) -> Path:
        return self.app_dir / STATE_NAME


def installed_layout(prefix: Path = Path(sys.prefix)) -> Layout | None:
    """The layout this interpreter belongs to; None when the app runs from a source checkout
    or a plain pip install, where the user manages torch."""
    app_dir = prefix.resolve().parent
    return Layout(app_dir, system_name()) if (app_dir / STATE_NAME).is_file() else None


@dataclass
class InstallState:
    app_version: str = ""
    variant: str = ""  # the torch build installed: a Variant name, "" before the first
    lock_sha256: str = ""  # of the lock the runtime's dependencies were installed from
    failed_variants: dict[str, str] = field(default_factory=dict)  # name → what went wrong
    gpu_offered: bool = False  # the first run's GPU offer was made (the tray offers it again)

    @classmethod
    def load(cls, path: Path) -> InstallState:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls()
        known = {key: value for key, value in data.items() if key in cls.__dataclass_fields__}
        return cls(**known)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        temporary.replace(path)


def lock_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def uv_environment(layout: Layout, base: Mapping[str, str] = os.environ) -> dict[str, str]:
    """uv's cache and Python downloads inside the app folder (hard links on one disk cost no
    second copy), so the uninstaller removes them too; a cache the caller set is kept."""
    env = dict(base)
    env.setdefault("UV_CACHE_DIR", str(layout.app_dir / "cache"))
    env.setdefault("UV_PYTHON_INSTALL_DIR", str(layout.app_dir / "python"))
    return env


def _pip_install(layout: Layout, *arguments: str) -> list[str]:
    return [str(layout.uv), "pip", "install", "--python", str(layout.python), *arguments]


def dependencies_command(layout: Layout) -> list[str]:
    # --no-deps: the lock already holds every dependency at its pinned version, each with
    # the sha256 of its files on PyPI: a file that differs (a tampered index or mirror) is
    # refused.
    return _pip_install(layout, "--no-deps", "--require-hashes", "-r", str(layout.lock_file))


def torch_command(layout: Layout, variant: Variant, env: Mapping[str, str]) -> list[str]:
    local = env.get(TORCH_FIND_LINKS_ENV)
    if local:
        return _pip_install(layout, "--no-index", "--find-links", local, f"torch=={TORCH_VERSION}")
    # Dependencies allowed: a CUDA build brings its CUDA libraries from the same index, at
    # the exact versions the torch wheel pins.
    return _pip_install(layout, "--index-url", variant.index_url, variant.torch_requirement)


def verify_command(layout: Layout, variant: Variant) -> list[str]:
    return [str(layout.python), "-c", _VERIFY_GPU if variant.uses_gpu else _VERIFY_CPU]


def _run(command: Sequence[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(command), capture_output=True, text=True, env=env, check=False)


def _last_line(result: subprocess.CompletedProcess[str]) -> str:
    """The gist of a failed step: its last line of output that is not one of uv's hints."""
    lines = (result.stderr or result.stdout or "").strip().splitlines()
    lines = [line for line in lines if line.strip() and not line.startswith("hint:")]
    return lines[-1].strip() if lines else f"exit status {result.returncode}"


class RuntimeInstaller:
    """Runs the uv steps for one layout; `run` is swapped in tests for a recording runner."""

    def __init__(self, layout: Layout, run: Run = _run, env: Mapping[str, str] | None = None):
        self.layout = layout
        self._run = run
        self.env = uv_environment(layout, os.environ if env is None else env)

    def _step(self, command: Sequence[str]) -> str | None:
        """Run one step; None when it worked, else its last line of output."""
        log.info("Running %s", " ".join(command))
        result = self._run(command, self.env)
        return None if result.returncode == 0 else _last_line(result)

    def state(self) -> InstallState:
        return InstallState.load(self.layout.state_file)

    def lock_changed(self) -> bool:
        return self.state().lock_sha256 != lock_digest(self.layout.lock_file)

    def install_dependencies(self) -> str | None:
        problem = self._step(dependencies_command(self.layout))
        if problem is None:
            state = self.state()
            state.lock_sha256 = lock_digest(self.layout.lock_file)
            state.app_version = __version__
            state.save(self.layout.state_file)
        return problem

    def switch_torch(self, variant: Variant) -> str | None:
        """Install `variant`'s torch and run one operation with it. When that fails, the CPU
        build goes back in and the failure is remembered, so it is not offered again
        unasked. Returns the problem, or None when `variant` works."""
        problem = self._step(torch_command(self.layout, variant, self.env)) or self._step(
            verify_command(self.layout, variant)
        )
        state = self.state()
        if problem is None:
            state.variant = variant.name
            state.failed_variants.pop(variant.name, None)
        else:
            log.warning("Torch %s failed here: %s", variant.name, problem)
            state.failed_variants[variant.name] = problem
            if variant is not CPU and self._step(torch_command(self.layout, CPU, self.env)) is None:
                state.variant = CPU.name
        state.app_version = __version__
        state.save(self.layout.state_file)
        return problem


def _ask(question: str, assume_yes: bool) -> bool:
    if assume_yes:
        return True
    if not sys.stdin.isatty():
        print(f"{question} [skipped: no terminal to ask; pass --yes]")
        return False
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def install(installer: RuntimeInstaller, variant: Variant) -> int:
    problem = installer.install_dependencies() or installer.switch_torch(variant)
    if problem:
        print(f"Installing the runtime failed: {problem}", file=sys.stderr)
        return 1
    print(f"Runtime ready: torch {TORCH_VERSION} ({variant.label})")
    return 0


def update(installer: RuntimeInstaller, assume_yes: bool, check_only: bool = False) -> int:
    """Keep the runtime unless its lock changed; then ask before downloading."""
    state = installer.state()
    state.app_version = __version__  # the installer has just put this version in place
    state.save(installer.layout.state_file)
    if not installer.lock_changed():
        print("Runtime unchanged: its dependencies are up to date")
        return 0
    if check_only:
        return EXIT_LOCK_CHANGED
    if not _ask("The runtime's dependencies changed. Download and install them now?", assume_yes):
        print("Runtime kept as it was; run `nanodictate update` to update it later")
        return 0
    problem = installer.install_dependencies()
    if problem is None and not installer.state().variant:
        problem = installer.switch_torch(CPU)
    if problem:
        print(f"Updating the runtime failed: {problem}", file=sys.stderr)
        return 1
    print("Runtime updated")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nanodictate.core.runtime_install")
    parser.add_argument("action", choices=["install", "update"])
    parser.add_argument("--app-dir", type=Path, help="default: the folder above this runtime")
    parser.add_argument("--variant", default=CPU.name, help="torch build for `install`")
    parser.add_argument("--yes", action="store_true", help="do not ask before downloading")
    parser.add_argument(
        "--check",
        action="store_true",
        help=f"`update` only tells, by exit status {EXIT_LOCK_CHANGED}, that the lock changed",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    app_dir = args.app_dir or Path(sys.prefix).resolve().parent
    installer = RuntimeInstaller(Layout(app_dir.resolve(), system_name()))
    if args.action == "install":
        return install(installer, variant_named(args.variant))
    return update(installer, args.yes, args.check)


if __name__ == "__main__":
    sys.exit(main())
