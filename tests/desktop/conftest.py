"""Fixtures for tests in tests/desktop/: a private desktop per test.

    def test_dictation_lands_in_window(desktop: DesktopSession) -> None:
        window = desktop.open_text_window()
        ...

Every test here is marked `desktop`. A fixture skips its test (with the reason) only when a
tool the session needs is not installed; any other set-up failure is an error. When a test
fails, a screenshot and the session's logs are kept in the test's tmp_path and the log tails
are printed.

Tests outside this folder use the harness directly:
`from desktop.harness import DesktopSession` (pytest puts tests/ on sys.path).
"""

from __future__ import annotations

import shutil
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from desktop.harness import DesktopError, DesktopSession, missing_tools

_RESULT_KEY = pytest.StashKey[dict[str, pytest.TestReport]]()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.desktop)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    item.stash.setdefault(_RESULT_KEY, {})[report.when] = report
    return report


def _failed(request: pytest.FixtureRequest) -> bool:
    reports = request.node.stash.get(_RESULT_KEY, {})
    return any(report.failed for report in reports.values())


def _session(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    *,
    tray: bool,
    audio: bool,
    watchdog_s: float = 300.0,  # pytest-timeout's limit too: a test that hangs is ended
) -> Iterator[DesktopSession]:
    missing = missing_tools(tray=tray, audio=audio)
    if missing:
        pytest.skip(f"desktop tests need these tools installed: {', '.join(missing)}")
    session = DesktopSession(tray=tray, audio=audio, watchdog_s=watchdog_s)
    try:
        session.start()
        yield session
    finally:
        if _failed(request) and not session.closed:
            try:
                session.screenshot(tmp_path / "failure.png")
            except DesktopError as exc:
                print(f"no screenshot: {exc}")
            print(session.describe())
            shutil.copytree(session.log_dir, tmp_path / "desktop-logs", dirs_exist_ok=True)
            print(f"screenshot and logs kept in {tmp_path}")
        session.close()


@pytest.fixture
def desktop(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DesktopSession]:
    """Xvfb + trayer (tray host) + PulseAudio with the virtual mic `vmic` (≈1–3 s)."""
    yield from _session(request, tmp_path, tray=True, audio=True)


@pytest.fixture
def long_desktop(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DesktopSession]:
    """`desktop` for a soak: its watchdog allows 30 minutes instead of 2."""
    yield from _session(request, tmp_path, tray=True, audio=True, watchdog_s=1800.0)


@pytest.fixture
def x_desktop(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DesktopSession]:
    """Only the X server (≈0.2 s): hotkeys, paste, focus."""
    yield from _session(request, tmp_path, tray=False, audio=False)


@pytest.fixture
def desktop_env(desktop: DesktopSession, monkeypatch: pytest.MonkeyPatch) -> DesktopSession:
    """`desktop`, with this test process pointed at it (DISPLAY, PULSE_SERVER)."""
    desktop.apply_env(monkeypatch)
    return desktop
