"""Tray icons: one SVG per state, plus the input level while recording.

The SVGs (`mic-<state>.svg`) sit beside this module and ship as package data (pyproject.toml),
so they are read with importlib.resources wherever the package is installed: a source tree,
a wheel, a zip. The top-level resources/ folder holds what installers use instead (the menu
entry and the app's own icon).

The level is drawn as a white fill rising inside the microphone's capsule, quantised to a
few steps so the icon is re-rendered (and the tray re-sent) only when it visibly changes.
"""

from __future__ import annotations

import functools
import logging
import math
from importlib import resources

from PySide6.QtCore import QByteArray, QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPainterPath, QPixmap
from PySide6.QtSvg import QSvgRenderer

from nanodictate.core.dictation import AppState

log = logging.getLogger(__name__)

SIZE = 64
LEVEL_STEPS = 8
# The capsule of the SVGs (x, y, w, h, radius), in the 64×64 viewBox.
_CAPSULE = (22.0, 4.0, 20.0, 34.0, 10.0)
# Speech RMS spans about -60 dBFS (quiet room) to -10 dBFS (loud, close); map that to 0…1.
_FLOOR_DB, _CEIL_DB = -60.0, -10.0


def level_fraction(rms: float) -> float:
    """An RMS level (0…1 full scale) as the 0…1 height the icon shows."""
    if rms <= 0:
        return 0.0
    db = 20 * math.log10(rms)
    return min(1.0, max(0.0, (db - _FLOOR_DB) / (_CEIL_DB - _FLOOR_DB)))


def level_step(rms: float) -> int:
    return round(level_fraction(rms) * LEVEL_STEPS)


def svg_bytes(state: AppState) -> bytes | None:
    """The SVG of `state`'s icon, from the package data; None when it is missing."""
    try:
        return (resources.files(__name__) / f"mic-{state.value}.svg").read_bytes()
    except OSError:
        return None


@functools.cache
def _pixmap(state: AppState) -> QPixmap:
    pixmap = QPixmap(SIZE, SIZE)
    pixmap.fill(Qt.GlobalColor.transparent)
    svg = svg_bytes(state)
    renderer = QSvgRenderer(QByteArray(svg or b""))
    painter = QPainter(pixmap)
    if renderer.isValid():
        renderer.render(painter)
    else:
        # A packaging mistake must not leave an invisible tray icon.
        log.warning("Icon mic-%s.svg is missing or damaged; drawing a plain one", state.value)
        painter.setBrush(QColor("#e53935" if state is AppState.RECORDING else "#757575"))
        painter.drawEllipse(8, 8, SIZE - 16, SIZE - 16)
    painter.end()
    return pixmap


@functools.cache
def icon_for(state: AppState, step: int = 0) -> QIcon:
    """The icon for a state; for RECORDING, `step` (0…LEVEL_STEPS) shows the input level."""
    pixmap = _pixmap(state)
    if state is AppState.RECORDING and step > 0:
        pixmap = pixmap.copy()
        x, y, w, h, r = _CAPSULE
        inset = 2.5  # inside the outline
        capsule = QPainterPath()
        capsule.addRoundedRect(QRectF(x + inset, y + inset, w - 2 * inset, h - 2 * inset), r, r)
        height = (h - 2 * inset) * min(step, LEVEL_STEPS) / LEVEL_STEPS
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setClipPath(capsule)
        painter.fillRect(QRectF(x, y + h - inset - height, w, height), QColor(255, 255, 255, 200))
        painter.end()
    return QIcon(pixmap)
