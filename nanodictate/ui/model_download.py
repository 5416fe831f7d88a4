"""Download the missing models on a background lane, with progress as Qt signals.

The download runs on its own `BackgroundLane` (`ui.background`), never on the GUI thread;
`cancel()` stops it at the next progress report or file (`core.models.progress`: the partial
folder stays, and the next download resumes it), and the outcome comes back on the GUI thread
as `finished`. At quit the app cancels it; the lane's thread ends at that next report.

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
from nanodictate.ui.background import BackgroundLane

if TYPE_CHECKING:
    from nanodictate.core.models.download import DownloadProgress

log = logging.getLogger(__name__)


DownloadFunction = Callable[
    [ModelSpec, Path, Callable[["DownloadProgress"], None], threading.Event], object
]


def models_to_download(
    models_dir: Path, speech_model: ModelSpec = FUN_ASR_MLT_NANO
) -> list[ModelSpec]:
    """The models the app needs (the VAD and the chosen speech model) that are not usable in
    `models_dir`. The small VAD first, so a hub that cannot deliver fails in seconds."""
    return [
        spec
        for spec in (FSMN_VAD, speech_model)
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
    progress = Signal(float, str)  # fraction of the current model, text for the user (any thread)
    # ok as an int: bools through queued signals from Python threads crash PySide6 6.12.
    finished = Signal(int, str)  # ok, message for the user (on the GUI thread)

    def __init__(
        self,
        models_dir: Path,
        download: DownloadFunction = _download_from_hubs,
        speech_model: Callable[[], ModelSpec] = lambda: FUN_ASR_MLT_NANO,
    ) -> None:
        """`speech_model()` is the speech model the user chose (tray menu → Speech model)."""
        super().__init__()
        self.models_dir = models_dir
        self.speech_model = speech_model
        self._download = download
        self._cancel = threading.Event()
        self.lane = BackgroundLane("download")  # its thread: "nanodictate-download_0"

    @property
    def running(self) -> bool:
        """From `start` until `finished` was emitted."""
        return self.lane.running > 0

    def missing(self) -> list[ModelSpec]:
        return models_to_download(self.models_dir, self.speech_model())

    def start(self) -> None:
        if self.running:
            return
        self._cancel.clear()
        self.lane.run(self._run, self._done)

    def cancel(self) -> None:
        self._cancel.set()

    def _done(self, outcome: tuple[int, str]) -> None:
        self.finished.emit(*outcome)

    def _run(self) -> tuple[int, str]:
        """On the lane's thread: every missing model, in order; (ok, message for the user)."""
        from nanodictate.core.errors import NanodictateError

        try:
            for spec in self.missing():

                def report(update: DownloadProgress, name: str = spec.display_name) -> None:
                    mb = 2**20
                    self.progress.emit(
                        update.fraction,
                        f"Downloading {name}: {update.fraction:.0%} "
                        f"({update.done / mb:,.0f} of {update.total / mb:,.0f} MB)",
                    )

                self._download(spec, self.models_dir, report, self._cancel)
        except NanodictateError as error:
            return 0, str(error)
        except Exception:
            log.exception("Model download failed")
            return 0, "The download failed; the log has the details."
        return 1, "The speech model is installed. Dictate away."
