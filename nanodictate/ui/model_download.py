"""Download the missing models in a background thread, with progress as Qt signals.

What is downloaded and how big it is are decided here once (`models_to_download`,
`download_size`), so the tooltip, the notification and the confirmation dialog cannot
disagree about it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from nanodictate.core.models.store import (
    FSMN_VAD,
    FUN_ASR_MLT_NANO,
    ModelSpec,
    folder_problem,
    human_size,
    model_folder,
)

if TYPE_CHECKING:
    from nanodictate.core.models.download import DownloadProgress

log = logging.getLogger(__name__)

# The app needs both; the small VAD first, so a hub that cannot deliver fails in seconds.
APP_MODELS = (FSMN_VAD, FUN_ASR_MLT_NANO)

DownloadFunction = Callable[
    [ModelSpec, Path, Callable[["DownloadProgress"], None], threading.Event], object
]


def models_to_download(models_dir: Path) -> list[ModelSpec]:
    """The models the app needs that are not usable in `models_dir`."""
    return [
        spec
        for spec in APP_MODELS
        if folder_problem(spec, model_folder(spec, models_dir)) is not None
    ]


def download_size(specs: Sequence[ModelSpec]) -> str:
    """How much downloading `specs` transfers, as every message about it words it."""
    # human_size is what the command line and the model-folder messages use too.
    return f"about {human_size(sum(spec.approx_download_bytes for spec in specs))}"


def _download_from_hubs(
    spec: ModelSpec,
    models_dir: Path,
    progress: Callable[[DownloadProgress], None],
    cancel: threading.Event,
) -> Path:
    # Imported here: urllib & co. are not needed at app start.
    from nanodictate.core.models.download import download_model

    return download_model(spec, models_dir, progress=progress, cancel=cancel)


class ModelDownloader(QObject):
    progress = Signal(float, str)  # fraction of the current model, text for the user
    # ok as an int: bools through queued signals from Python threads crash PySide6 6.12.
    finished = Signal(int, str)  # ok, message for the user

    def __init__(self, models_dir: Path, download: DownloadFunction = _download_from_hubs) -> None:
        super().__init__()
        self.models_dir = models_dir
        self._download = download
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
        from nanodictate.core.errors import NanodictateError

        try:
            for spec in models_to_download(self.models_dir):

                def report(update: DownloadProgress, name: str = spec.display_name) -> None:
                    mb = 2**20
                    self.progress.emit(
                        update.fraction,
                        f"Downloading {name}: {update.fraction:.0%} "
                        f"({update.done / mb:,.0f} of {update.total / mb:,.0f} MB)",
                    )

                self._download(spec, self.models_dir, report, self._cancel)
        except NanodictateError as error:
            self.finished.emit(0, str(error))
            return
        except Exception:
            log.exception("Model download failed")
            self.finished.emit(0, "The download failed; the log has the details.")
            return
        self.finished.emit(1, "The speech model is installed. Dictate away.")
