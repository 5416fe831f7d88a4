"""What a changed setting does to the running app, beyond being stored."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nanodictate import settings as S
from nanodictate.core.transcriber import EngineState

if TYPE_CHECKING:
    from nanodictate.ui.controller import DictationController


def apply_setting(controller: DictationController, setting: S.Setting[Any], value: Any) -> None:
    recorder = controller.recorder
    if setting in (S.PRECISION, S.DEVICE):
        if controller.engine_state is not EngineState.UNLOADED:
            controller.unload_model(f"{setting.name} changed")  # the next load uses it
    elif setting in (S.UNLOAD_AFTER_MINUTES, S.TWO_TIER_IDLE):
        controller.apply_idle_policy()
    elif setting in (S.HOTKEY_DICTATE, S.HOTKEY_TOGGLE, S.FAVOURITE_HOTKEYS):
        controller.hotkeys.apply()
    elif setting is S.MICROPHONE:
        controller.microphone(lambda: recorder.set_device(value or None), "Microphone problem")
    elif setting is S.KEEP_MICROPHONE_OPEN:
        recorder.keep_open = bool(value)
        if not controller.recording:  # a recording in progress keeps its stream
            if value:
                controller.start_microphone()
            else:
                recorder.close()
    elif setting is S.MAX_RECORDING_SECONDS:
        recorder.max_seconds = float(value)
    elif setting is S.HISTORY_MAX_ENTRIES:
        controller.history.set_max_entries(int(value))
