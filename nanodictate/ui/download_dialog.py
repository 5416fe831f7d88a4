"""Asking before the model download, and following it from the offer to its outcome.

A download is about 2 GB of traffic, so it starts only from the Download button of a dialog
that says what is downloaded, how big it is and from where. The notification's click and the
tray menu item only open that dialog: Qt's X11 balloon reports clicks that were no choice
(a right click on the tray icon) as messageClicked, so such a click must not cost anything.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Slot
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QPushButton, QVBoxLayout

from nanodictate.core.languages import languages_of
from nanodictate.core.models.store import FUN_ASR_MLT_NANO, SPEECH_MODELS, ModelSpec
from nanodictate.ui.menu import TrayMenu
from nanodictate.ui.model_download import ModelDownloader, download_size
from nanodictate.ui.notifications import NotifierLike
from nanodictate.ui.tray import Tray

log = logging.getLogger(__name__)

# The languages people most often expect and would only discover missing after 2 GB.
NOT_SUPPORTED = "German, French, Spanish, Italian or Russian"


def confirmation_text(specs: Sequence[ModelSpec], models_dir: Path) -> str:
    # Imported here: urllib & co. are not needed at app start. The hosts are the ones the
    # download will use, environment overrides included.
    from nanodictate.core.models.download import HubEndpoints

    hosts = HubEndpoints.from_env()
    huggingface = ", ".join(
        f"{hosts.for_hub('huggingface')}/{spec.huggingface_repo}" for spec in specs
    )
    modelscope = ", ".join(
        f"{hosts.for_hub('modelscope')}/models/{spec.modelscope_repo}" for spec in specs
    )
    models = "\n".join(f"  • {spec.display_name}: {download_size([spec])}" for spec in specs)
    speech = next((spec for spec in specs if spec in SPEECH_MODELS), FUN_ASR_MLT_NANO)
    known = languages_of(speech.name)
    languages = ", ".join(language.english_name for language in known)
    return (
        "nanodictate turns speech into text with models that run on this computer. "
        f"These are not installed yet:\n{models}\n"
        f"In all: {download_size(specs)}, saved in {models_dir}.\n\n"
        f"They come from Hugging Face ({huggingface}). If Hugging Face cannot deliver, "
        f"they come from ModelScope instead ({modelscope}). Nothing else is sent or "
        "received, and an interrupted download resumes where it stopped.\n\n"
        f"The model understands {len(known)} languages: {languages}. "
        f"It does not understand {NOT_SUPPORTED}. The other speech model (tray menu → Speech "
        "model) does not either."
    )


class DownloadDialog(QDialog):
    """The confirmation; `accepted` means the user pressed Download."""

    def __init__(self, specs: Sequence[ModelSpec], models_dir: Path) -> None:
        super().__init__()
        self.setWindowTitle("Download the speech model?")
        self.label = QLabel(confirmation_text(specs, models_dir))
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        buttons = QDialogButtonBox()
        self.download_button = QPushButton("Download")
        self.not_now_button = QPushButton("Not now")
        buttons.addButton(self.download_button, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(self.not_now_button, QDialogButtonBox.ButtonRole.RejectRole)
        # The dialog may appear while the user types elsewhere: a stray Enter must not start
        # 2 GB of traffic.
        self.download_button.setAutoDefault(False)
        self.not_now_button.setDefault(True)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.label)
        layout.addWidget(buttons)
        self.setMinimumWidth(480)

    def text(self) -> str:
        return self.label.text()


class DownloadOffer(QObject):
    """Offers the missing models (notification, menu item, tooltip) and runs the download
    the user confirmed, reporting its progress and outcome."""

    def __init__(
        self, downloader: ModelDownloader, notifier: NotifierLike, menu: TrayMenu, tray: Tray
    ) -> None:
        super().__init__()
        self.downloader = downloader
        self._notifier = notifier
        self._menu = menu
        self._tray = tray
        self.dialog: DownloadDialog | None = None
        downloader.progress.connect(self._on_progress)
        downloader.finished.connect(self._on_finished)

    @property
    def models_dir(self) -> Path:
        return self.downloader.models_dir

    def offer(self, _detail: str = "") -> None:
        """Tell the user the models are missing; nothing is downloaded yet."""
        if self.downloader.running:
            return
        specs = self.downloader.missing()
        if not specs:
            log.warning("A download was offered but every model in %s is usable", self.models_dir)
            return
        size = download_size(specs)
        self._show_offer(size)
        self._notifier.show(
            "Speech model missing",
            f"nanodictate needs its speech model ({size}), which is not installed in "
            f"{self.models_dir}. Click here or use the tray menu to see what the download "
            "involves and start it.",
            level="warning",
            action=self.confirm,
        )

    def _show_offer(self, size: str) -> None:
        self._menu.show_download(True, f"Download the speech model ({size})…")
        self._tray.download_note = f"Speech model not installed: {size} to download"
        self._tray.update_tooltip()

    @Slot()
    def confirm(self) -> None:
        """Open the confirmation dialog (or bring it forward); only its Download button starts
        the download."""
        if self.downloader.running:
            return
        if self.dialog is None:
            specs = self.downloader.missing()
            if not specs:
                self._menu.show_download(False)
                return
            self.dialog = DownloadDialog(specs, self.models_dir)
            self.dialog.accepted.connect(self._start)
            self.dialog.finished.connect(self._closed)
        self.dialog.show()
        self.dialog.raise_()
        self.dialog.activateWindow()

    @Slot()
    def _closed(self) -> None:
        if self.dialog is not None:
            self.dialog.deleteLater()
            self.dialog = None

    @Slot()
    def _start(self) -> None:
        log.info("The user confirmed the model download")
        self._menu.show_download(True, "Downloading the speech model…")
        self.downloader.start()

    @Slot(float, str)
    def _on_progress(self, _fraction: float, text: str) -> None:
        self._tray.download_note = text
        self._menu.show_download(True, text)
        self._tray.update_tooltip()

    @Slot(int, str)
    def _on_finished(self, ok: int, message: str) -> None:
        specs = self.downloader.missing()
        if specs:
            self._show_offer(download_size(specs))
        else:
            self._menu.show_download(False)
            self._tray.download_note = None
            self._tray.update_tooltip()
        self._notifier.show(
            "Model download" if ok else "Model download failed",
            message,
            level="info" if ok else "error",
        )
