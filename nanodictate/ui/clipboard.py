"""QClipboard as `nanodictate.core.ports.ClipboardPort`, usable from a worker thread.

Saving copies the bytes of every format the clipboard offers (text, HTML, URIs, images as
image/png …) plus the decoded image Qt keeps for its own format, so an image copied in a
browser survives a dictation. Every call hops to the GUI thread (QClipboard is GUI-only).

Read detection: our text goes on the clipboard inside a QMimeData whose `retrieveData` notes
that someone asked for the data. On X11 and Wayland the target of a paste must ask us (the
owner) for the content, so a read after Ctrl+V proves the paste reached an application.
Elsewhere (macOS copies eagerly) reads cannot be seen and a fixed delay is used.

An owner that never answers: on X11 a read of the clipboard asks the program that owns it, and
Qt waits for its answer on the GUI thread (≈5 s per format; a hung owner froze the app for
115 s). So on X11 the owner is first asked on a connection of our own, off the GUI thread,
with a deadline (`nanodictate.platform.x11.selection`); if it does not answer, the snapshot
fails with `ClipboardNotAnswering` and the paste stops there: the text goes on the clipboard
(taking it over needs no answer from the old owner) and the user is told.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QByteArray, QMimeData
from PySide6.QtGui import QClipboard, QGuiApplication, QImage

from nanodictate.core.errors import NanodictateError
from nanodictate.ui.gui_call import GuiInvoker

log = logging.getLogger(__name__)

# Qt's in-process image format carries no bytes; the image is saved decoded instead.
_QT_IMAGE_FORMAT = "application/x-qt-image"
# Asks KDE's Klipper and similar clipboard histories not to keep our temporary text (the
# dictation history has it), so each dictation does not flood theirs (Handy 921).
_HISTORY_HINT = "x-kde-passwordManagerHint"
_DETECTING_PLATFORMS = ("xcb", "wayland")
# How long the clipboard's owner gets to answer before we give up on saving its content.
OWNER_ANSWER_TIMEOUT_S = 1.5

# (selection name, timeout) -> whether its owner answered (X11: platform.x11.selection).
OwnerProbe = Callable[[str, float], bool]


class ClipboardNotAnswering(NanodictateError):
    """The program that holds the clipboard does not answer (it hangs)."""


@dataclass
class ClipboardSnapshot:
    formats: list[tuple[str, bytes]] = field(default_factory=list)
    image: QImage | None = None

    @property
    def empty(self) -> bool:
        return not self.formats and self.image is None


class _ReadFlag:
    """Shared by the mime data and us: the clipboard owns (and deletes) the QMimeData, so we
    never touch it after handing it over."""

    def __init__(self) -> None:
        self.armed = False
        self.read = threading.Event()


class _TrackedMimeData(QMimeData):
    """Notes when another program reads it (once the flag is armed)."""

    def __init__(self, flag: _ReadFlag) -> None:
        super().__init__()
        self._flag = flag

    def retrieveData(self, mimetype: str, preferredType: Any) -> Any:
        if self._flag.armed and mimetype != _HISTORY_HINT:
            self._flag.read.set()
        return super().retrieveData(mimetype, preferredType)


_CLIPBOARD = QClipboard.Mode.Clipboard


def take_snapshot(clipboard: QClipboard, mode: QClipboard.Mode = _CLIPBOARD) -> ClipboardSnapshot:
    """Copy of everything on the clipboard, or on the X11 PRIMARY selection (GUI thread)."""
    snapshot = ClipboardSnapshot()
    mime = clipboard.mimeData(mode)
    if mime is None:
        return snapshot
    for name in mime.formats():
        if name == _QT_IMAGE_FORMAT:
            continue
        data = mime.data(name)
        snapshot.formats.append((name, bytes(data.data())))
    if mime.hasImage():
        image = mime.imageData()
        if isinstance(image, QImage) and not image.isNull():
            snapshot.image = image.copy()
    return snapshot


def restore_snapshot(
    clipboard: QClipboard, snapshot: ClipboardSnapshot, mode: QClipboard.Mode = _CLIPBOARD
) -> None:
    """Put a snapshot back (GUI thread)."""
    if snapshot.empty:
        clipboard.clear(mode)
        return
    mime = QMimeData()
    for name, data in snapshot.formats:
        mime.setData(name, QByteArray(data))
    if snapshot.image is not None:
        mime.setImageData(snapshot.image)
    clipboard.setMimeData(mime, mode)


class QtClipboard:
    """The system clipboard for `TextOutput` — or, with ``mode=Selection``, the X11 PRIMARY
    selection that xterm-like terminals paste with Shift+Insert; create on the GUI thread."""

    def __init__(
        self,
        *,
        detect_reads: bool | None = None,
        mode: QClipboard.Mode = _CLIPBOARD,
        owner_answers: OwnerProbe | None = None,
    ) -> None:
        app = QGuiApplication.instance()
        assert app is not None, "QtClipboard needs a QGuiApplication"
        self._invoker = GuiInvoker()
        platform = QGuiApplication.platformName()
        if detect_reads is None:
            detect_reads = platform in _DETECTING_PLATFORMS
        self._detect = detect_reads
        self._mode = mode
        self._flag: _ReadFlag | None = None
        if owner_answers is None and platform == "xcb":
            from nanodictate.platform.x11.selection import selection_owner_answers

            owner_answers = selection_owner_answers
        self._owner_answers = owner_answers

    @staticmethod
    def _clipboard() -> QClipboard:
        return QGuiApplication.clipboard()

    def snapshot(self) -> ClipboardSnapshot:
        """Everything on the clipboard (or selection), to put back after the paste; raises
        ClipboardNotAnswering when another program owns it and does not answer."""
        self._check_owner_answers()
        return self._invoker.call(lambda: take_snapshot(self._clipboard(), self._mode))

    def _check_owner_answers(self) -> None:
        """From the paste's thread, never the GUI thread: the probe may wait its deadline."""
        probe = self._owner_answers
        if probe is None or self._invoker.call(self._owned):
            return  # our own content: Qt reads it without asking anyone
        selection = "PRIMARY" if self._mode == QClipboard.Mode.Selection else "CLIPBOARD"
        try:
            answered = probe(selection, OWNER_ANSWER_TIMEOUT_S)
        except Exception as error:  # no connection of our own: let Qt try as before
            log.warning("Cannot ask the %s owner whether it answers: %s", selection, error)
            return
        if not answered:
            raise ClipboardNotAnswering(
                "The program holding the clipboard does not respond, so the text was not pasted."
            )

    def _owned(self) -> bool:
        clipboard = self._clipboard()
        if self._mode == QClipboard.Mode.Selection:
            return bool(clipboard.ownsSelection())
        return bool(clipboard.ownsClipboard())

    def put_text(self, text: str) -> None:
        def put() -> None:
            flag = _ReadFlag()
            mime = _TrackedMimeData(flag)
            mime.setText(text)
            mime.setData(_HISTORY_HINT, QByteArray(b"secret"))
            self._flag = flag
            self._clipboard().setMimeData(mime, self._mode)

        self._invoker.call(put)

    def read_text(self) -> str | None:
        def read() -> str | None:
            mime = self._clipboard().mimeData(self._mode)
            return None if mime is None or not mime.hasText() else mime.text()

        return self._invoker.call(read)

    def arm_read_detection(self) -> None:
        flag = self._flag
        if flag is not None:
            flag.read.clear()
            flag.armed = True

    def was_read(self) -> bool | None:
        flag = self._flag
        if not self._detect or flag is None:
            return None
        return flag.read.is_set()

    def release(self) -> None:
        """Swap our tracking object for a plain copy (GUI thread, at exit): a Python subclass
        still owned by the clipboard when the interpreter finalizes crashes PySide."""
        self._flag = None
        clipboard = self._clipboard()
        mime = clipboard.mimeData(self._mode)
        if isinstance(mime, _TrackedMimeData):
            plain = QMimeData()
            plain.setText(mime.text())
            clipboard.setMimeData(plain, self._mode)

    def restore(self, snapshot: object) -> None:
        assert isinstance(snapshot, ClipboardSnapshot)
        self._flag = None
        self._invoker.call(lambda: restore_snapshot(self._clipboard(), snapshot, self._mode))
