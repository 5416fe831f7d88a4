"""The tray icon: its look says the state, its tooltip the details."""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtWidgets import QSystemTrayIcon

from nanodictate import settings as S
from nanodictate.core.dictation import AppState
from nanodictate.core.languages import language_for
from nanodictate.ui.icons import icon_for, level_step

log = logging.getLogger(__name__)

_STATE_TEXT = {
    AppState.UNLOADED: "Ready (model not loaded)",
    AppState.LOADING: "Loading the model…",
    AppState.READY: "Ready",
    AppState.RECORDING: "Recording",
    AppState.TRANSCRIBING: "Transcribing…",
    AppState.ERROR: "Error",
}


def _megabytes(count: int) -> str:
    return f"{count / 2**20:,.0f} MB"


class Tray(QObject):
    tooltip_changed = Signal(str)  # the new tooltip (for the end-to-end test report)

    def __init__(
        self, controller: Any, settings: S.Settings, icon: QSystemTrayIcon | None = None
    ) -> None:
        super().__init__()
        self.controller = controller
        self.settings = settings
        self.icon = icon or QSystemTrayIcon()
        self.icon.setIcon(icon_for(AppState.UNLOADED))
        self._state = AppState.UNLOADED
        self._step = 0
        # The model download's offer or progress (set by DownloadOffer), for the tooltip.
        self.download_note: str | None = None
        # The torch build in use, or its installation (set by AccelerationStep).
        self.acceleration_note: str | None = None
        self._tooltip = ""
        # The per-app profile of the latest dictation, shown while it records and transcribes.
        self.profile_name = ""
        controller.delivery.profile_changed.connect(self._on_profile)
        controller.state_changed.connect(self._on_state)
        controller.level_changed.connect(self._on_level)
        controller.memory_changed.connect(lambda _report: self.update_tooltip())
        controller.engine_state_changed.connect(lambda _state: self.update_tooltip())
        settings.add_listener(lambda _setting, _value: self.update_tooltip())
        self.update_tooltip()

    @property
    def state(self) -> AppState:
        """The state the icon shows."""
        return self._state

    @Slot(str)
    def _on_state(self, state: str) -> None:
        self._state = AppState(state)
        self._step = 0
        self.icon.setIcon(icon_for(self._state))
        self.update_tooltip()

    @Slot(str)
    def _on_profile(self, name: str) -> None:
        self.profile_name = name
        self.update_tooltip()

    @Slot(float)
    def _on_level(self, rms: float) -> None:
        if self._state is not AppState.RECORDING:
            return
        step = level_step(rms)
        if step != self._step:  # re-send the icon only when it visibly changes
            self._step = step
            self.icon.setIcon(icon_for(AppState.RECORDING, step))

    def tooltip_text(self) -> str:
        controller, settings = self.controller, self.settings
        lines = [f"nanodictate — {_STATE_TEXT[self._state]}"]
        if self._state is AppState.ERROR and controller.error:
            lines.append(controller.error)
        if self.download_note:
            lines.append(self.download_note)
        try:
            language = language_for(settings.get(S.LANGUAGE)).label
        except ValueError:
            language = settings.get(S.LANGUAGE)
        lines.append(f"Language: {language}")
        if self.profile_name and self._state in (AppState.RECORDING, AppState.TRANSCRIBING):
            lines.append(f"Profile: {self.profile_name}")
        precision = S.PRECISION.label_for(settings.get(S.PRECISION))
        device = S.DEVICE.label_for(settings.get(S.DEVICE))
        engine = controller.engine
        load = engine.last_load
        if load is not None and engine.state in ("ready", "offloaded"):
            precision = str(getattr(load.precision, "value", load.precision)).upper()
            device = "GPU" if load.device == "cuda" else "CPU"
            if load.compute_note:  # "GPU (fp32 compute: this GPU has no bf16)"
                device += f" ({load.compute_dtype} compute: {load.compute_note})"
        lines.append(f"Precision: {precision} · Device: {device}")
        if self.acceleration_note:
            lines.append(self.acceleration_note)
        memory = engine.memory
        if engine.state == "unloaded" or memory is None:
            lines.append("Model memory: none")
        else:
            held = f"Model memory: {_megabytes(memory.model_cpu_bytes)} RAM"
            if memory.model_gpu_bytes:
                held += f", {_megabytes(memory.model_gpu_bytes)} GPU"
            if engine.state == "offloaded":
                held += " (moved off the GPU while idle)"
            lines.append(held)
        return "\n".join(lines)

    def update_tooltip(self) -> None:
        text = self.tooltip_text()
        self.icon.setToolTip(text)
        if text != self._tooltip:
            self._tooltip = text
            self.tooltip_changed.emit(text)
