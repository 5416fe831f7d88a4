"""QClipboard save/restore (offscreen platform: an in-process clipboard) and the hop to the
GUI thread that lets the paste sequence run on a worker."""

from __future__ import annotations

import threading
from typing import Any

from PySide6.QtCore import QByteArray, QMimeData, Qt
from PySide6.QtGui import QColor, QGuiApplication, QImage

from nanodictate.core.text_output import OutputResult, PasteMethod, TextOutput
from nanodictate.ui.clipboard import (
    OWNER_ANSWER_TIMEOUT_S,
    QtClipboard,
    restore_snapshot,
    take_snapshot,
)


def _image() -> QImage:
    image = QImage(8, 6, QImage.Format.Format_ARGB32)
    image.fill(QColor(10, 200, 30, 255))
    image.setPixelColor(2, 3, QColor(Qt.GlobalColor.red))
    return image


def test_text_html_and_custom_formats_are_restored(qapp: Any) -> None:
    clipboard = QGuiApplication.clipboard()
    mime = QMimeData()
    mime.setText("plain ünïcode")
    mime.setHtml("<b>bold</b>")
    mime.setData("application/x-custom", QByteArray(b"\x00\x01binary"))
    clipboard.setMimeData(mime)
    saved = take_snapshot(clipboard)
    clipboard.setText("dictated")
    restore_snapshot(clipboard, saved)
    back = clipboard.mimeData()
    assert back.text() == "plain ünïcode"
    assert "<b>bold</b>" in back.html()
    assert bytes(back.data("application/x-custom").data()) == b"\x00\x01binary"


def test_images_survive_a_dictation(qapp: Any) -> None:
    clipboard = QGuiApplication.clipboard()
    clipboard.setImage(_image())
    saved = take_snapshot(clipboard)
    assert saved.image is not None
    clipboard.setText("dictated")
    assert clipboard.image().isNull()
    restore_snapshot(clipboard, saved)
    restored = clipboard.image().convertToFormat(QImage.Format.Format_ARGB32)
    assert restored == _image()


def test_empty_clipboard_is_restored_empty(qapp: Any) -> None:
    clipboard = QGuiApplication.clipboard()
    clipboard.clear()
    saved = take_snapshot(clipboard)
    clipboard.setText("dictated")
    restore_snapshot(clipboard, saved)
    assert clipboard.text() == ""


class ReadingKeyboard:
    """Ctrl+V as the target app would answer it: it reads the clipboard (on the GUI thread)."""

    def __init__(self, port: QtClipboard) -> None:
        self.port = port
        self.pasted: list[str | None] = []

    def wait_until_keys_released(self, timeout: float) -> bool:
        return True

    def send_paste(self, *, terminal: bool) -> None:
        self.pasted.append(self.port.read_text())

    def type_text(self, text: str) -> None:
        raise AssertionError("not used")


def _deliver_on_a_worker(output: TextOutput, text: str, qtbot: Any) -> OutputResult:
    """Paste `text` from another thread, as the paste lane does, while the GUI loop runs."""
    results: list[OutputResult] = []
    worker = threading.Thread(
        target=lambda: results.append(output.deliver(text, PasteMethod.PASTE, None))
    )
    worker.start()
    qtbot.waitUntil(lambda: bool(results), timeout=5000)  # the GUI loop serves the worker
    worker.join()
    return results[0]


def test_paste_from_a_worker_thread_restores_the_image(qapp: Any, qtbot: Any) -> None:
    clipboard = QGuiApplication.clipboard()
    clipboard.setImage(_image())
    port = QtClipboard(detect_reads=True)
    keyboard = ReadingKeyboard(port)
    output = TextOutput(port, keyboard, None)
    result = _deliver_on_a_worker(output, "你好世界", qtbot)
    assert result.ok and result.clipboard_restored and result.landed_at is not None
    assert keyboard.pasted == ["你好世界"]
    assert clipboard.image().convertToFormat(QImage.Format.Format_ARGB32) == _image()


def test_read_detection_sees_only_reads_after_arming(qapp: Any) -> None:
    port = QtClipboard(detect_reads=True)
    port.put_text("x")
    assert port.read_text() == "x"  # our own check before the paste does not count
    port.arm_read_detection()
    assert port.was_read() is False
    assert QGuiApplication.clipboard().mimeData().text() == "x"
    assert port.was_read() is True
    assert QtClipboard(detect_reads=False).was_read() is None
    port.release()
    assert QGuiApplication.clipboard().text() == "x"


def test_an_owner_that_does_not_answer_stops_the_paste_and_the_text_stays(
    qapp: Any, qtbot: Any
) -> None:
    """On X11 the owner is asked first (platform.x11.selection, tested on a real X server in
    tests/desktop/test_app_faults_system.py); here a probe that says it did not answer."""
    asked: list[tuple[str, float]] = []

    def no_answer(selection: str, timeout: float) -> bool:
        asked.append((selection, timeout))
        return False

    port = QtClipboard(detect_reads=True, owner_answers=no_answer)
    port._owned = lambda: False  # type: ignore[method-assign]  # another program owns it
    keyboard = ReadingKeyboard(port)
    output = TextOutput(port, keyboard, None)
    result = _deliver_on_a_worker(output, "dictated", qtbot)
    assert asked == [("CLIPBOARD", OWNER_ANSWER_TIMEOUT_S)]
    assert not result.ok and keyboard.pasted == []
    assert result.message == (
        "The program holding the clipboard does not respond, so the text was not pasted. "
        "It is on the clipboard and in Recent."
    )
    assert QGuiApplication.clipboard().text() == "dictated"
    port.release()


def test_our_own_clipboard_is_read_without_asking(qapp: Any) -> None:
    def must_not_ask(selection: str, timeout: float) -> bool:
        raise AssertionError("asked the owner of our own clipboard")

    port = QtClipboard(owner_answers=must_not_ask)
    port._owned = lambda: True  # type: ignore[method-assign]
    QGuiApplication.clipboard().setText("ours")
    assert port.snapshot().formats
