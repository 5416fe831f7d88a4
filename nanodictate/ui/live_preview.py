"""The recording overlay and the live text: one small strip near the top of the screen that
never takes the focus.

With the recording indicator on, the strip shows "● Recording" and a bar for the input level
from key-down to key-up; with live text on, the text shows under it (or alone). The words of
the chunks already settled are shown plainly; the engine's guess at what is still being said
is greyed. The text is pasted at key-up as always: this window is only a view, so it must
never steal the focus from the window the text goes to. Hence a frameless tool window that
does not accept focus, shown without activation, and outside the window manager's control on
X11 (a manager may otherwise still focus a new top-level window).
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QVBoxLayout, QWidget

from nanodictate.core.asr.chunks import join_texts
from nanodictate.ui.icons import level_fraction

# Long dictations: the end is what the user is looking at.
MAX_SHOWN_CHARS = 240
WIDTH_SHARE = 0.6  # of the screen's width, with text
INDICATOR_WIDTH_PX = 260  # the indicator alone: small, out of the way
LEVEL_STEPS = 100
TOP_MARGIN_PX = 24
GUESS_COLOUR = "#9a9a9a"


class LivePreview(QWidget):
    def __init__(self) -> None:
        super().__init__(
            None,
            Qt.WindowType.Tool
            | Qt.WindowType.FramelessWindowHint
            | Qt.WindowType.WindowStaysOnTopHint
            | Qt.WindowType.WindowDoesNotAcceptFocus
            | Qt.WindowType.X11BypassWindowManagerHint,
        )
        self.setObjectName("nanodictate-live-preview")
        self.setWindowTitle("nanodictate live text")
        self.setAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setStyleSheet("background: #202020; color: #f0f0f0; font-size: 15px;")
        self.indicator = QWidget(self)
        self.level_bar = QProgressBar(self.indicator)
        self.level_bar.setRange(0, LEVEL_STEPS)
        self.level_bar.setTextVisible(False)
        self.level_bar.setFixedHeight(8)
        self.level_bar.setStyleSheet(
            "QProgressBar { background: #3a3a3a; border: none; }"
            "QProgressBar::chunk { background: #4caf50; }"
        )
        row = QHBoxLayout(self.indicator)
        row.setContentsMargins(0, 0, 0, 0)
        self.indicator_label = QLabel('<span style="color:#e53935">●</span> Recording')
        row.addWidget(self.indicator_label)
        row.addWidget(self.level_bar, 1)
        self.label = QLabel(self)
        self.label.setTextFormat(Qt.TextFormat.RichText)
        self.label.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        layout.addWidget(self.indicator)
        layout.addWidget(self.label)
        for child in self.findChildren(QWidget):
            child.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.indicator.hide()
        self.label.hide()
        self.locked_text = ""
        self.guess_text = ""

    def show_recording(self) -> None:
        """Show the indicator with an empty level bar (shown without focus)."""
        self.level_bar.setValue(0)
        self.indicator.show()
        self._show()

    @Slot(float)
    def show_level(self, rms: float) -> None:
        """The input level (RMS, 0…1 full scale) on the bar, scaled as the tray icon's."""
        self.level_bar.setValue(round(level_fraction(rms) * LEVEL_STEPS))

    def show_text(self, locked: Sequence[str], guess: str | None) -> None:
        """Show the settled texts plainly and the guess greyed (shown without focus)."""
        self.locked_text = join_texts(locked)
        self.guess_text = (guess or "").strip()
        shown_locked, shown_guess = _tail(self.locked_text, self.guess_text)
        parts = [html.escape(shown_locked)]
        if shown_guess:
            parts.append(f'<span style="color:{GUESS_COLOUR}">{html.escape(shown_guess)}</span>')
        text = " ".join(part for part in parts if part)
        self.label.setText(text)
        # Beside the indicator, the strip stays small until there are words to show.
        self.label.setVisible(bool(text) or self.indicator.isHidden())
        self._show()

    def clear(self) -> None:
        self.locked_text = self.guess_text = ""
        self.label.clear()
        self.label.hide()
        self.indicator.hide()
        self.level_bar.setValue(0)
        self.hide()

    def _show(self) -> None:
        self._place()
        if not self.isVisible():
            self.show()

    def _place(self) -> None:
        screen = QGuiApplication.primaryScreen()
        if screen is None:
            return
        area = screen.availableGeometry()
        if self.label.isHidden():
            width = min(INDICATOR_WIDTH_PX, area.width())
        else:
            width = max(200, int(area.width() * WIDTH_SHARE))
        self.setFixedWidth(width)
        self.adjustSize()
        self.move(area.x() + (area.width() - width) // 2, area.y() + TOP_MARGIN_PX)


def _tail(locked: str, guess: str) -> tuple[str, str]:
    """The last MAX_SHOWN_CHARS of locked + guess, split back into the two parts."""
    room = MAX_SHOWN_CHARS - len(guess)
    if room >= len(locked):
        return locked, guess
    if room <= 0:
        return "", "…" + guess[-MAX_SHOWN_CHARS:]
    return "…" + locked[-room:], guess
