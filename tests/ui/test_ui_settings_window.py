"""The settings window fits the screen it opens on and every setting stays reachable.

All sections together are taller (≈ 925 px) than the offscreen test screen (800 × 800) and a
1280 × 800 laptop. Screens of other sizes, and two screens, need their own QApplication: those
cases run in a child process with Qt's offscreen platform configured by a JSON file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QRect
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QDialogButtonBox

from nanodictate import settings as S
from nanodictate.ui.settings_store import IniFileStore
from nanodictate.ui.settings_window import SettingsWindow


@pytest.fixture
def window(qapp: Any, qtbot: Any, tmp_path: Path) -> SettingsWindow:
    window = SettingsWindow(S.Settings(tmp_path / "settings.ini", open_store=IniFileStore))
    qtbot.addWidget(window)
    return window


def test_window_fits_the_screen_and_is_centred(window: SettingsWindow, qtbot: Any) -> None:
    area = QGuiApplication.primaryScreen().availableGeometry()
    assert area.height() < window.content.sizeHint().height()  # the case that was cut off
    window.show()
    qtbot.waitExposed(window)
    frame = window.frameGeometry()
    assert area.contains(frame), (area, frame)
    assert abs(frame.center().x() - area.center().x()) <= 1
    assert abs(frame.center().y() - area.center().y()) <= 1
    assert window.scroll_area.verticalScrollBar().maximum() > 0  # the sections scroll instead
    assert window.scroll_area.horizontalScrollBar().maximum() == 0


def test_every_setting_and_the_buttons_can_be_reached(window: SettingsWindow, qtbot: Any) -> None:
    window.show()
    qtbot.waitExposed(window)
    viewport, bar = window.scroll_area.viewport(), window.scroll_area.verticalScrollBar()
    assert window.editors
    for name, editor in window.editors.items():
        assert window.content.isAncestorOf(editor.widget), name
        # Scroll its top to the top of the view (the bar stops at its end for the last ones).
        bar.setValue(editor.widget.mapTo(window.content, editor.widget.rect().topLeft()).y())
        top_left = editor.widget.mapTo(viewport, editor.widget.rect().topLeft())
        shown = QRect(top_left, editor.widget.size())
        assert viewport.rect().contains(shown), (name, shown, viewport.rect())
    # OK / Apply / Cancel are outside the scroll area: always inside the window.
    buttons = window.findChild(QDialogButtonBox)
    assert buttons is not None and not window.content.isAncestorOf(buttons)
    for button in buttons.buttons():
        top_left = button.mapTo(window, button.rect().topLeft())
        assert window.rect().contains(QRect(top_left, button.size())), button.text()


_CHILD = r"""
import json, sys, tempfile
from pathlib import Path
from PySide6.QtGui import QCursor, QGuiApplication
from PySide6.QtWidgets import QApplication

app = QApplication(["settings-window-test", "-platform", "offscreen:configfile=" + sys.argv[1]])
from nanodictate import settings as S
from nanodictate.ui.settings_store import IniFileStore
from nanodictate.ui.settings_window import SettingsWindow

QCursor.setPos(int(sys.argv[2]), int(sys.argv[3]))  # the user is on this screen
settings = S.Settings(Path(tempfile.mkdtemp()) / "settings.ini", open_store=IniFileStore)
window = SettingsWindow(settings)
window.show()
app.processEvents()
frame, area = window.frameGeometry(), QGuiApplication.screenAt(QCursor.pos()).availableGeometry()
print(json.dumps({
    "frame": [frame.x(), frame.y(), frame.width(), frame.height()],
    "area": [area.x(), area.y(), area.width(), area.height()],
    "scrolls": window.scroll_area.verticalScrollBar().maximum() > 0,
}))
"""


def _open_on(
    tmp_path: Path, screens: list[tuple[int, int, int, int]], cursor: tuple[int, int]
) -> dict[str, Any]:
    config = tmp_path / "screens.json"
    config.write_text(json.dumps({"screens": [
        {"name": f"screen{i}", "x": x, "y": y, "width": w, "height": h,
         "logicalDpi": 96, "logicalBaseDpi": 96, "dpr": 1}
        for i, (x, y, w, h) in enumerate(screens)
    ]}))  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, str(config), *map(str, cursor)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_window_opens_fitted_on_the_screen_with_the_pointer(tmp_path: Path) -> None:
    opened = _open_on(tmp_path, [(0, 0, 1280, 800), (1280, 0, 1024, 600)], cursor=(1500, 300))
    frame, area = QRect(*opened["frame"]), QRect(*opened["area"])
    assert area == QRect(1280, 0, 1024, 600)
    assert area.contains(frame), (area, frame)
    assert abs(frame.center().x() - area.center().x()) <= 1
    assert opened["scrolls"]


def test_window_shows_everything_unscrolled_where_the_screen_is_tall_enough(
    tmp_path: Path,
) -> None:
    opened = _open_on(tmp_path, [(0, 0, 1600, 1200)], cursor=(10, 10))
    assert QRect(*opened["area"]).contains(QRect(*opened["frame"]))
    assert not opened["scrolls"]
