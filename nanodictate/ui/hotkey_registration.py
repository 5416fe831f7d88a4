"""Which keys are grabbed: the dictation hotkeys from the settings, and the cancel key while
a recording runs. The ids are those of `core.dictation`; the backend is the platform's."""

from __future__ import annotations

import logging
from typing import Any

from nanodictate import settings as S
from nanodictate.core.dictation import (
    CANCEL_HELD_ID,
    CANCEL_ID,
    DICTATE_ID,
    LANGUAGE_PREFIX,
    TOGGLE_ID,
)
from nanodictate.core.errors import NanodictateError
from nanodictate.core.hotkeys import Hotkey
from nanodictate.platform.base import HotkeyBackend

log = logging.getLogger(__name__)


class HotkeyRegistration:
    def __init__(self, hotkeys: HotkeyBackend | None, settings: S.Settings, notifier: Any):
        self.hotkeys = hotkeys
        self.settings = settings
        self.notifier = notifier
        self._registered: set[str] = set()
        self._cancel_registered = False

    def apply(self) -> list[str]:
        """(Re)register the dictation hotkeys; the problems, also shown to the user."""
        if self.hotkeys is None:
            return []
        for hotkey_id in sorted(self._registered):
            self._unregister(hotkey_id)
        self._registered.clear()
        problems = []
        for hotkey_id, text in self.texts().items():
            if not text.strip():
                continue
            try:
                self.hotkeys.register(hotkey_id, Hotkey.parse(text))
                self._registered.add(hotkey_id)
            except NanodictateError as error:
                problems.append(str(error))
            except ValueError as error:
                problems.append(f"The hotkey {text!r} is not valid: {error}")
        if problems:
            # One notification for all of them: the first is the one that matters most.
            self.notifier.show("Hotkey problem", " ".join(dict.fromkeys(problems)), level="warning")
        return problems

    def texts(self) -> dict[str, str]:
        """Hotkey id → the hotkey's text, for the dictation hotkeys in the settings."""
        wanted = {
            DICTATE_ID: self.settings.get(S.HOTKEY_DICTATE),
            TOGGLE_ID: self.settings.get(S.HOTKEY_TOGGLE),
        }
        favourites: dict[str, str] = self.settings.get(S.FAVOURITE_HOTKEYS)
        for code, text in favourites.items():
            wanted[LANGUAGE_PREFIX + code] = text
        return wanted

    def cancel_key(self, on: bool, trigger: str = "") -> None:
        """Grab the cancel key while recording only, so Esc keeps working elsewhere.

        While push-to-talk is held its modifiers are down too, and a grab matches exact
        modifiers: Esc pressed during Ctrl+Alt+Space arrives as Ctrl+Alt+Esc. So the cancel
        key is also grabbed with the trigger's modifiers.
        """
        if self.hotkeys is None or on == self._cancel_registered:
            return
        if not self.hotkeys.temporary_grabs:
            return  # no per-recording cancel key there; `nanodictate cancel` still works
        if not on:
            self._cancel_registered = False
            for hotkey_id in (CANCEL_ID, CANCEL_HELD_ID):
                self._unregister(hotkey_id)
            return
        text = self.settings.get(S.HOTKEY_CANCEL).strip()
        if not text:
            return
        try:
            cancel = Hotkey.parse(text)
            self.hotkeys.register(CANCEL_ID, cancel)
            self._cancel_registered = True
        except (NanodictateError, ValueError) as error:
            # Not worth a notification on every dictation: the CLI `cancel` still works.
            log.warning("Cancel hotkey not available: %s", error)
            return
        trigger_text = self.texts().get(trigger, "")
        try:
            modifiers = Hotkey.parse(trigger_text).modifiers if trigger_text.strip() else None
        except ValueError:
            modifiers = None
        if modifiers and not modifiers <= cancel.modifiers:
            held = Hotkey(cancel.key, cancel.modifiers | modifiers)
            try:
                self.hotkeys.register(CANCEL_HELD_ID, held)
            except (NanodictateError, ValueError) as error:
                log.info("Cancel with the hotkey held (%s) not available: %s", held, error)

    def _unregister(self, hotkey_id: str) -> None:
        assert self.hotkeys is not None
        try:
            self.hotkeys.unregister(hotkey_id)
        except Exception:
            log.debug("unregister %s failed", hotkey_id, exc_info=True)
