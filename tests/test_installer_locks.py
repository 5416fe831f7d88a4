"""The committed runtime locks (packaging/locks) match pyproject.toml's dependencies.

Offline: re-resolving needs PyPI, so the test checks what drift would break instead: the
digest of the dependency list the lock was made from, and each direct dependency pinned at a
version its range accepts. On failure: `.venv/bin/python packaging/locks/generate.py`.
"""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCKS = ROOT / "packaging" / "locks"
# The environment markers each lock is resolved for (packaging/locks/generate.py TARGETS).
MARKERS = {
    "linux": {"sys_platform": "linux", "platform_system": "Linux", "python_version": "3.11"},
    "windows": {"sys_platform": "win32", "platform_system": "Windows", "python_version": "3.11"},
}


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lock_generator", LOCKS / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _requirements(lock: Path) -> list[str]:
    """The lock's requirements, each joined with its continued lines (its hashes)."""
    text = lock.read_text(encoding="utf-8").replace("\\\n", " ")
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def _pins(lock: Path) -> dict[str, str]:
    pins = {}
    for line in _requirements(lock):
        name, _, rest = line.partition("==")
        pins[canonicalize_name(name)] = rest.split(";")[0].split()[0]
    return pins


@pytest.mark.parametrize("system", sorted(MARKERS))
def test_every_pin_carries_the_hashes_of_its_files(system: str) -> None:
    """The runtime installs with --require-hashes (core/runtime_install.py)."""
    for requirement in _requirements(LOCKS / f"{system}.txt"):
        hashes = re.findall(r"--hash=sha256:([0-9a-f]+)", requirement)
        assert hashes and all(len(digest) == 64 for digest in hashes), requirement


@pytest.mark.parametrize("system", sorted(MARKERS))
def test_lock_was_made_from_the_current_dependency_list(system: str) -> None:
    generator = _generator()
    first_line = (LOCKS / f"{system}.txt").read_text(encoding="utf-8").splitlines()[0]
    assert first_line == generator.DIGEST_PREFIX + generator.dependencies_digest(), (
        "pyproject.toml's dependencies changed: run packaging/locks/generate.py"
    )


@pytest.mark.parametrize("system", sorted(MARKERS))
def test_lock_pins_every_direct_dependency_in_its_range_and_no_torch(system: str) -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    pins = _pins(LOCKS / f"{system}.txt")
    assert "torch" not in pins  # installed per variant by core/runtime_install.py
    for text in pyproject["project"]["dependencies"]:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        if name == "torch":
            continue
        applies = requirement.marker is None or requirement.marker.evaluate(MARKERS[system])
        if not applies:
            assert name not in pins, f"{name} is for another OS"
            continue
        assert name in pins, f"{name} is missing from the {system} lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{name}=={pins[name]} is outside {requirement.specifier}"
        )
