"""What a changed setting does to the running app, beyond being stored."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nanodictate import settings as S
from nanodictate.core.recorder import MicrophoneError
from nanodictate.core.transcriber import EngineState

if TYPE_CHECKING:
    from nanodictate.ui.controller import DictationController


def apply_setting(controller: DictationController, setting: S.Setting[Any], value: Any) -> None:
    recorder = controller.recorder
    if setting in (S.PRECISION, S.DEVICE):
        if controller.engine.state is not EngineState.UNLOADED:
            controller.engine.unload(f"{setting.name} changed")  # the next load uses it
    elif setting is S.MODEL:
        controller.engine.unload("speech model changed", rebuild=True)
    elif setting in (S.UNLOAD_AFTER_MINUTES, S.TWO_TIER_IDLE):
        controller.engine.apply_idle_policy()
    elif setting in (S.HOTKEY_DICTATE, S.HOTKEY_TOGGLE, S.FAVOURITE_HOTKEYS):
        controller.hotkeys.apply()
    elif setting is S.MICROPHONE:
        _microphone(controller, lambda: recorder.set_device(value or None), "Microphone problem")
    elif setting is S.KEEP_MICROPHONE_OPEN:
        recorder.keep_open = bool(value)
        if not controller.recording:  # a recording in progress keeps its stream
            if value:
                start_microphone(controller)
            else:
                recorder.close()
    elif setting is S.MAX_RECORDING_SECONDS:
        recorder.max_seconds = float(value)
    elif setting is S.HISTORY_MAX_ENTRIES:
        controller.history.set_max_entries(int(value))


def start_microphone(controller: DictationController) -> None:
    """At app start, or when turned on: open the always-on stream when that is the setting."""
    if controller.recorder.keep_open:
        _microphone(controller, controller.recorder.open, "No microphone")


def _microphone(controller: DictationController, action: Callable[[], object], title: str) -> None:
    try:
        action()
    except MicrophoneError as error:
        controller.notifier.show(title, str(error), level="error")
