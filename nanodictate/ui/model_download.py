"""Download the missing models in a background thread, with progress as Qt signals."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from PySide6.QtCore import QObject, Signal

log = logging.getLogger(__name__)


class ModelDownloader(QObject):
    progress = Signal(float, str)  # fraction of the current model, text for the user
    # ok as an int: bools through queued signals from Python threads crash PySide6 6.12.
    finished = Signal(int, str)  # ok, message for the user

    def __init__(self, models_dir: Path) -> None:
        super().__init__()
        self.models_dir = models_dir
        self._thread: threading.Thread | None = None
        self._cancel = threading.Event()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._cancel.clear()
        self._thread = threading.Thread(target=self._run, name="nanodictate-download", daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        self._cancel.set()

    def _run(self) -> None:
        # Imported here: urllib & co. are not needed at app start.
        from nanodictate.core.download import DownloadProgress, download_model
        from nanodictate.core.errors import NanodictateError
        from nanodictate.core.model_store import (
            FSMN_VAD,
            FUN_ASR_MLT_NANO,
            folder_problem,
            model_folder,
        )

        try:
            for spec in (FSMN_VAD, FUN_ASR_MLT_NANO):
                if folder_problem(spec, model_folder(spec, self.models_dir)) is None:
                    continue

                def report(update: DownloadProgress, name: str = spec.display_name) -> None:
                    mb = 2**20
                    self.progress.emit(
                        update.fraction,
                        f"Downloading {name}: {update.fraction:.0%} "
                        f"({update.done / mb:,.0f} of {update.total / mb:,.0f} MB)",
                    )

                download_model(spec, self.models_dir, progress=report, cancel=self._cancel)
        except NanodictateError as error:
            self.finished.emit(0, str(error))
            return
        except Exception:
            log.exception("Model download failed")
            self.finished.emit(0, "The download failed; the log has the details.")
            return
        self.finished.emit(1, "The speech model is installed. Dictate away.")
