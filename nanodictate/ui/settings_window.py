"""The settings window: one editor per declared setting, built from its type.

bool → check box, choices → combo box, int → spin box, str → line edit, list → one item a
line, mapping → "key = value" a line. Hotkeys (with the platform's parser) and replacement
rules are checked before anything is saved; nothing is applied until OK or Apply.

Each section of `settings.by_section()` is a group box; the group boxes sit in a scroll area,
in two columns where the screen is wide enough for both side by side, else in one. The two
columns keep the declared order (the first column top to bottom, then the second) and are
balanced by height. All sections in one column (≈ 1355 px) are taller than most screens; in
two they fit a 1600 × 1200 screen.

Each time the window opens, the columns are chosen for the screen it opens on, and the window
is sized to its content but clamped to the free area of that screen, and centred there: OK /
Apply / Cancel sit outside the scroll area and must stay on screen. The content never scrolls
sideways on a screen wide enough for one column.
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QSize
from PySide6.QtGui import QCursor, QGuiApplication, QScreen, QShowEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from nanodictate import settings as S
from nanodictate.core.hotkeys import Hotkey
from nanodictate.core.languages import language_for, languages_of
from nanodictate.core.text_steps.replacements import replacement_problems

log = logging.getLogger(__name__)

SECTIONS = S.by_section()  # (title, settings) in the order the window shows them
_HOTKEY_SETTINGS = (S.HOTKEY_DICTATE, S.HOTKEY_TOGGLE, S.HOTKEY_CANCEL)
# Kept free on each side of the window on its screen: room for the window manager's frame,
# which is not known before the window is first shown.
SCREEN_MARGIN = 32


class _Editor:
    """One setting's widget, reading and writing values of its declared type."""

    def __init__(self, setting: S.Setting[Any], value: Any) -> None:
        self.setting = setting
        self.widget: QWidget
        if setting.type is bool:
            box = QCheckBox(setting.label)
            box.setChecked(bool(value))
            self.widget = box
        elif setting.choices:
            combo = QComboBox()
            for choice, label in setting.choices:
                combo.addItem(label, choice)
            combo.setCurrentIndex(max(0, combo.findData(value)))
            self.widget = combo
        elif setting.type is int:
            spin = QSpinBox()
            low, high = setting.minimum, setting.maximum
            spin.setRange(0 if low is None else low, 1_000_000 if high is None else high)
            spin.setValue(int(value))
            self.widget = spin
        elif setting.type is list:
            edit = QPlainTextEdit("\n".join(value))
            edit.setPlaceholderText("One a line")
            edit.setFixedHeight(80)
            self.widget = edit
        elif setting.type is dict:
            edit = QPlainTextEdit("\n".join(f"{k} = {v}" for k, v in value.items()))
            edit.setPlaceholderText("ja = ctrl+alt+j")
            edit.setFixedHeight(60)
            self.widget = edit
        else:
            line = QLineEdit(str(value))
            self.widget = line
        if setting.help:
            self.widget.setToolTip(setting.help)

    def value(self) -> Any:
        widget = self.widget
        if isinstance(widget, QCheckBox):
            return widget.isChecked()
        if isinstance(widget, QComboBox):
            return widget.currentData()
        if isinstance(widget, QSpinBox):
            return widget.value()
        if isinstance(widget, QPlainTextEdit):
            lines = [line.strip() for line in widget.toPlainText().splitlines() if line.strip()]
            if self.setting.type is list:
                return lines
            mapping = {}
            for line in lines:
                key, sep, val = line.partition("=")
                if not sep:
                    raise ValueError(f"{self.setting.label}: write each line as code = hotkey")
                mapping[key.strip()] = val.strip()
            return mapping
        assert isinstance(widget, QLineEdit)
        return widget.text().strip()

    def set_value(self, value: Any) -> None:
        widget = self.widget
        if isinstance(widget, QCheckBox):
            widget.setChecked(bool(value))
        elif isinstance(widget, QComboBox):
            widget.setCurrentIndex(max(0, widget.findData(value)))
        elif isinstance(widget, QSpinBox):
            widget.setValue(int(value))
        elif isinstance(widget, QPlainTextEdit):
            if self.setting.type is list:
                widget.setPlainText("\n".join(value))
            else:
                widget.setPlainText("\n".join(f"{k} = {v}" for k, v in value.items()))
        elif isinstance(widget, QLineEdit):
            widget.setText(str(value))


def check_hotkey(text: str) -> str | None:
    """The problem with a hotkey's text, or None when it parses (empty = off)."""
    if not text.strip():
        return None
    try:
        Hotkey.parse(text)
    except ValueError as error:
        return str(error)
    return None


def _balanced_split(heights: list[int]) -> int:
    """How many of the sections, in their order, go into the first of two columns so that the
    taller column is as short as it can be. `heights` include the spacing below each one."""
    total = sum(heights)
    return min(
        range(1, len(heights)),
        key=lambda count: max(sum(heights[:count]), total - sum(heights[:count])),
        default=len(heights),
    )


class SettingsWindow(QDialog):
    def __init__(self, settings: S.Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.setWindowTitle("nanodictate — Settings")
        self.editors: dict[str, _Editor] = {}
        self.content = QWidget()
        self.sections: list[QGroupBox] = []
        for title, members in SECTIONS:
            # A child from the start: a parentless box is a window, with a window's margins.
            group = QGroupBox(title, self.content)
            form = QFormLayout(group)
            for setting in members:
                editor = _Editor(setting, settings.get(setting))
                self.editors[setting.name] = editor
                if setting.type is bool:
                    form.addRow(editor.widget)
                else:
                    form.addRow(setting.label, editor.widget)
            self.sections.append(group)
        self.side_by_side = QHBoxLayout(self.content)
        self.side_by_side.setContentsMargins(0, 0, 0, 0)
        self.columns = (QVBoxLayout(), QVBoxLayout())
        for column in self.columns:
            column.setContentsMargins(0, 0, 0, 0)
            self.side_by_side.addLayout(column, 1)
        self.scroll_area = QScrollArea()
        self.scroll_area.setWidgetResizable(True)
        self.scroll_area.setFrameShape(QScrollArea.Shape.NoFrame)
        self.scroll_area.setWidget(self.content)
        self._arrange(columns=1)  # until `fit_to_screen` knows the screen
        layout = QVBoxLayout(self)
        layout.addWidget(self.scroll_area, 1)
        self.error_label = QLabel()
        self.error_label.setStyleSheet("color: #c62828")
        self.error_label.setWordWrap(True)
        layout.addWidget(self.error_label)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok
            | QDialogButtonBox.StandardButton.Apply
            | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self._ok)
        buttons.rejected.connect(self.reject)
        buttons.button(QDialogButtonBox.StandardButton.Apply).clicked.connect(self.apply)
        layout.addWidget(buttons)
        self._model_combo().currentIndexChanged.connect(self._offer_languages_of_chosen_model)
        self._offer_languages_of_chosen_model()
        settings.add_listener(self._on_setting)

    def _model_combo(self) -> QComboBox:
        combo = self.editors[S.MODEL.name].widget
        assert isinstance(combo, QComboBox)
        return combo

    def _offer_languages_of_chosen_model(self) -> None:
        """Fill the Language combo with the languages of the model chosen in this window (not
        yet applied, perhaps): Fun-ASR-Nano has 3 of MLT-Nano's 31. A language the model lacks
        gives way to the default one, which both models have."""
        combo = self.editors[S.LANGUAGE.name].widget
        assert isinstance(combo, QComboBox)
        current = combo.currentData()
        combo.blockSignals(True)  # the items change, not the user's choice
        combo.clear()
        for language in languages_of(self._model_combo().currentData()):
            combo.addItem(language.label, language.code)
        index = combo.findData(current)
        combo.setCurrentIndex(index if index >= 0 else max(0, combo.findData(S.LANGUAGE.default)))
        combo.blockSignals(False)

    def showEvent(self, event: QShowEvent) -> None:
        # Spontaneous shows come from the window system (un-minimizing): keep the user's size.
        if not event.spontaneous():
            self.fit_to_screen()
        super().showEvent(event)

    def fit_to_screen(self, screen: QScreen | None = None) -> None:
        """Lay the sections out in two columns if they fit `screen`'s width, else in one; size
        the window to its content, at most the screen's free area less SCREEN_MARGIN on each
        side, and centre it there. By default the screen with the mouse pointer: the one the
        user is looking at when the window is opened from the tray or a second launch."""
        if screen is None:
            screen = QGuiApplication.screenAt(QCursor.pos()) or QGuiApplication.primaryScreen()
        area = screen.availableGeometry()
        frame = self.frameGeometry().size() - self.geometry().size()  # zero before first show
        room = QSize(
            area.width() - 2 * SCREEN_MARGIN - frame.width(),
            area.height() - 2 * SCREEN_MARGIN - frame.height(),
        )
        self._arrange(columns=2)
        if self._size_for_all_content().width() > room.width():
            self._arrange(columns=1)
        wanted = self._size_for_all_content()
        width = min(wanted.width(), room.width())
        height = min(wanted.height(), room.height())
        self.resize(max(width, self.minimumWidth()), max(height, self.minimumHeight()))
        outer = self.size() + frame
        self.move(
            area.x() + (area.width() - outer.width()) // 2,
            area.y() + (area.height() - outer.height()) // 2,
        )

    def _arrange(self, columns: int) -> None:
        """Put the sections into the first `columns` columns, in order, balanced by height."""
        first, second = self.columns
        for column in self.columns:
            while column.takeAt(0) is not None:  # the sections stay children of the content
                pass
        heights = [group.sizeHint().height() + first.spacing() for group in self.sections]
        in_first = _balanced_split(heights) if columns == 2 else len(self.sections)
        for index, group in enumerate(self.sections):
            column = first if index < in_first else second
            column.addWidget(group)
        for column in self.columns:
            if column.count():  # an empty column takes no room
                column.addStretch(1)  # sections keep their height, at the top
        # Layouts cache their size hints: a column's change reaches neither the layout around
        # it nor the dialog's, which holds the scroll area's hint (the content's, capped).
        self.side_by_side.invalidate()
        self.scroll_area.updateGeometry()

    def _size_for_all_content(self) -> QSize:
        """The window size that shows every section without scrolling. A scroll area's own
        size hint is capped (about 24 lines high), so the content's hint is used instead."""
        hint = self.sizeHint()
        layout = self.layout()
        assert layout is not None
        margins = layout.contentsMargins()
        scrollbar = self.scroll_area.verticalScrollBar().sizeHint().width()
        content = self.content.sizeHint()
        width = max(hint.width(), content.width() + scrollbar + margins.left() + margins.right())
        height = hint.height() - self.scroll_area.sizeHint().height() + content.height()
        return QSize(width, height)

    def _on_setting(self, setting: S.Setting[Any], value: Any) -> None:
        # The tray menu may change a setting while the window is open.
        editor = self.editors.get(setting.name)
        if editor is not None:
            editor.set_value(value)

    def reload(self) -> None:
        for editor in self.editors.values():
            editor.set_value(self.settings.get(editor.setting))
        self.error_label.clear()

    def apply(self) -> bool:
        """Validate everything, then save what changed; False (and a message) on a problem."""
        values: dict[str, Any] = {}
        problems = []
        for name, editor in self.editors.items():
            try:
                values[name] = editor.setting.validate(editor.value())
            except ValueError as error:
                problems.append(str(error))
        problems += _hotkey_problems(values)
        problems += replacement_problems(list(values.get(S.REPLACEMENTS.name, [])))
        if problems:
            self.error_label.setText("\n".join(problems))
            return False
        self.error_label.clear()
        for name, value in values.items():
            self.settings.set(S.BY_NAME[name], value)
        return True

    def _ok(self) -> None:
        if self.apply():
            self.accept()


def _hotkey_problems(values: dict[str, Any]) -> list[str]:
    """What is wrong with the hotkeys and the favourite languages' hotkeys among `values`."""
    problems = []
    for setting in _HOTKEY_SETTINGS:
        problem = check_hotkey(str(values.get(setting.name, "")))
        if problem:
            problems.append(f"{setting.label}: {problem}")
    for code, text in dict(values.get(S.FAVOURITE_HOTKEYS.name, {})).items():
        try:
            language_for(code)
        except ValueError as error:
            problems.append(str(error))
        problem = check_hotkey(text)
        if problem:
            problems.append(f"{code}: {problem}")
    return problems
