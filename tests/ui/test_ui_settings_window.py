"""The settings window fits the screen it opens on and every setting stays reachable.

All sections in one column are taller (≈ 1355 px) than the offscreen test screen (800 × 800)
and a 1280 × 800 laptop; where the screen is wide enough they stand in two columns, which fit
a 1600 × 1200 screen unscrolled. Screens of other sizes, and two screens, need their own
QApplication: those cases run in a child process with Qt's offscreen platform configured by a
JSON file.
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
from PySide6.QtWidgets import QComboBox, QDialogButtonBox, QPlainTextEdit

from nanodictate import settings as S
from nanodictate.ui.settings_store import IniFileStore
from nanodictate.ui.settings_window import SettingsWindow

Section = tuple[str, QRect]  # a section's title and its place in the scrolled content
DECLARED_ORDER = [title for title, _settings in S.by_section()]


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


def _columns(sections: list[Section]) -> list[list[Section]]:
    """The sections grouped by their left edge, left to right, each top to bottom."""
    lefts = sorted({place.x() for _title, place in sections})
    return [
        sorted((s for s in sections if s[1].x() == left), key=lambda s: s[1].y()) for left in lefts
    ]


def _titles(column: list[Section]) -> list[str]:
    return [title for title, _place in column]


def test_one_column_where_two_do_not_fit_side_by_side(window: SettingsWindow, qtbot: Any) -> None:
    window.show()
    qtbot.waitExposed(window)
    columns = _columns([(group.title(), group.geometry()) for group in window.sections])
    assert len(columns) == 1
    assert _titles(columns[0]) == DECLARED_ORDER


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
    "scrolls_sideways": window.scroll_area.horizontalScrollBar().maximum() > 0,
    "sections": [
        [group.title(), group.x(), group.y(), group.width(), group.height()]
        for group in window.sections
    ],
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
    assert not opened["scrolls_sideways"]


@pytest.fixture(scope="module")
def opened_on_a_tall_wide_screen(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _open_on(tmp_path_factory.mktemp("wide"), [(0, 0, 1600, 1200)], cursor=(10, 10))


def test_window_shows_everything_unscrolled_where_the_screen_is_tall_enough(
    opened_on_a_tall_wide_screen: dict[str, Any],
) -> None:
    opened = opened_on_a_tall_wide_screen
    assert QRect(*opened["area"]).contains(QRect(*opened["frame"]))
    assert not opened["scrolls"]
    assert not opened["scrolls_sideways"]


def test_two_balanced_columns_in_declared_order_on_a_wide_screen(
    opened_on_a_tall_wide_screen: dict[str, Any],
) -> None:
    sections = [
        (title, QRect(*place)) for title, *place in opened_on_a_tall_wide_screen["sections"]
    ]
    first, second = _columns(sections)  # exactly two
    assert _titles(first) + _titles(second) == DECLARED_ORDER
    left, right = [place for _title, place in first], [place for _title, place in second]
    assert max(place.right() for place in left) < right[0].left()  # side by side

    # Balanced: moving the section at the break into the other column makes the taller
    # column no shorter.
    spacing = left[1].top() - left[0].bottom() - 1
    tallest = max(left[-1].bottom(), right[-1].bottom())
    tail = left[-1].height() + spacing
    with_tail_moved = max(left[-2].bottom(), right[-1].bottom() + tail)
    head = right[0].height() + spacing
    with_head_moved = max(left[-1].bottom() + head, right[-1].bottom() - head)
    assert tallest <= min(with_tail_moved, with_head_moved), (left, right)


def _click_ok(window: SettingsWindow) -> None:
    buttons = window.findChild(QDialogButtonBox)
    assert buttons is not None
    buttons.button(QDialogButtonBox.StandardButton.Ok).click()


def test_replacement_rules_are_checked_before_they_are_saved(
    window: SettingsWindow, qtbot: Any
) -> None:
    window.show()
    qtbot.waitExposed(window)
    rules = window.editors[S.REPLACEMENTS.name].widget
    assert isinstance(rules, QPlainTextEdit)
    rules.setPlainText("nano dictate => nanodictate\n/(colour/ => color\njust words")
    _click_ok(window)
    assert window.isVisible()  # refused: the user fixes the rules in the open window
    problems = window.error_label.text().splitlines()
    assert len(problems) == 2
    assert problems[0].startswith("Replacement rule 2: /(colour/ is not a valid regular")
    assert problems[1].startswith('Replacement rule 3 ("just words") is not of the form')
    assert window.settings.get(S.REPLACEMENTS) == []

    good = ["nano dictate => nanodictate", "/colou?r/i => colour", "# a comment", "um =>"]
    rules.setPlainText("\n".join(good))
    _click_ok(window)
    assert not window.isVisible()
    assert window.error_label.text() == ""
    assert window.settings.get(S.REPLACEMENTS) == good


def _codes(combo: QComboBox) -> list[str]:
    return [combo.itemData(index) for index in range(combo.count())]


def test_language_combo_offers_only_the_chosen_models_languages(
    window: SettingsWindow, qtbot: Any
) -> None:
    settings = window.settings
    languages = window.editors[S.LANGUAGE.name].widget
    model = window.editors[S.MODEL.name].widget
    assert isinstance(languages, QComboBox) and isinstance(model, QComboBox)
    assert len(_codes(languages)) == 31 and languages.currentData() == "en"

    # Chosen in the window: the list follows before anything is applied.
    languages.setCurrentIndex(languages.findData("ja"))
    model.setCurrentIndex(model.findData("fun-asr-nano"))
    assert _codes(languages) == ["zh", "en", "ja"] and languages.currentData() == "ja"
    assert languages.itemText(0) == "中文 (Chinese)" and settings.get(S.MODEL) == "fun-asr-mlt-nano"
    _click_ok(window)
    assert (settings.get(S.MODEL), settings.get(S.LANGUAGE)) == ("fun-asr-nano", "ja")

    # Changed outside (the tray): back to 31, then Korean, which Fun-ASR-Nano lacks.
    settings.set(S.MODEL, "fun-asr-mlt-nano")
    assert len(_codes(languages)) == 31 and languages.currentData() == "ja"
    settings.set(S.LANGUAGE, "ko")
    settings.set(S.MODEL, "fun-asr-nano")
    assert _codes(languages) == ["zh", "en", "ja"] and languages.currentData() == "en"
