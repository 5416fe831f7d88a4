"""The tray menu. Choices come from the settings declaration and apply at once."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QUrl
from PySide6.QtGui import QAction, QActionGroup, QDesktopServices, QGuiApplication
from PySide6.QtWidgets import QMenu, QMessageBox

from nanodictate import settings as S
from nanodictate.core.dictation import AppState
from nanodictate.core.history import Entry
from nanodictate.core.languages import languages_of
from nanodictate.core.profiles import ProfileBook
from nanodictate.ui.history_actions import HistoryActions

log = logging.getLogger(__name__)

RECENT_COUNT = 10
_RECENT_LABEL_CHARS = 48
_REASON_CHARS = 60
_STATUS_TEXT = {
    AppState.UNLOADED: "Model not loaded",
    AppState.LOADING: "Loading the model…",
    AppState.READY: "Ready",
    AppState.RECORDING: "Recording…",
    AppState.TRANSCRIBING: "Transcribing…",
}


def _short(text: str, limit: int = _RECENT_LABEL_CHARS) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"


def short_reason(message: str) -> str:
    """The gist of an error message: its first clause, e.g. "X is not installed" of
    "X is not installed: /path does not exist. Run …" (the full text is in the tooltip)."""
    return _short(re.split(r"[.:]\s", message.strip(), maxsplit=1)[0].rstrip("."), _REASON_CHARS)


def status_text(state: AppState, error: str | None) -> str:
    """The menu's status line, in words for the user."""
    if state is AppState.ERROR:
        return f"Problem: {short_reason(error or 'the log has the details')}"
    return _STATUS_TEXT[state]


class TrayMenu(QMenu):
    def __init__(
        self,
        settings: S.Settings,
        controller: Any,
        history: Any,
        *,
        on_settings: Callable[[], None],
        on_quit: Callable[[], None],
        on_download: Callable[[], None],
        list_microphones: Callable[[], Sequence[str]],
        on_acceleration: Callable[[], None] | None = None,
        on_doctor: Callable[[], None] | None = None,
        open_file: Callable[[Path], bool] | None = None,
        history_actions: HistoryActions | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.controller = controller
        self.history = history
        self._list_microphones = list_microphones
        self._open_file = open_file or _open_in_editor
        self.history_actions = history_actions or HistoryActions(settings, controller, history)
        self._groups: dict[str, QActionGroup] = {}

        self.status_action = self.addAction("")
        self.status_action.setEnabled(False)
        self.download_action = self.addAction("Download the speech model…")
        self.download_action.triggered.connect(on_download)
        self.download_action.setVisible(False)
        self.addSeparator()
        self.addMenu(self._choice_menu(S.MODEL))
        self.language_menu = self._choice_menu(S.LANGUAGE, self._language_choices())
        self.addMenu(self.language_menu)
        self.addMenu(self._choice_menu(S.PRECISION))
        self.addMenu(self._choice_menu(S.DEVICE))
        self.addMenu(self._choice_menu(S.HOTKEY_MODE))
        self.addMenu(self._choice_menu(S.UNLOAD_AFTER_MINUTES))
        self.unload_action = self.addAction("Unload now")
        self.unload_action.triggered.connect(lambda: controller.engine.unload("from the menu"))
        self.microphone_menu = self.addMenu("Microphone")
        self.microphone_menu.aboutToShow.connect(self._fill_microphones)
        self.recent_menu = self.addMenu("Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        self.addSeparator()
        # Shown when the app passes them: GPU acceleration only in an installed app (from a
        # source checkout the user manages torch).
        self.acceleration_action = self._optional_action("GPU acceleration…", on_acceleration)
        self.doctor_action = self._optional_action("Check this computer…", on_doctor)
        self.addAction("Settings…").triggered.connect(on_settings)
        self.profiles_action = self.addAction("Per-app profiles…")
        self.profiles_action.triggered.connect(self.edit_profiles)
        self.addAction("Quit").triggered.connect(on_quit)

        settings.add_listener(self._on_setting)
        controller.state_changed.connect(lambda _state: self._refresh_status())
        controller.engine_state_changed.connect(lambda _state: self._refresh_status())
        # The error can change without a state change; the menu shows the latest on opening.
        self.aboutToShow.connect(self._refresh_status)
        self._refresh_status()

    def _optional_action(self, text: str, on_trigger: Callable[[], None] | None) -> QAction:
        action = self.addAction(text)
        action.setVisible(on_trigger is not None)
        if on_trigger is not None:
            action.triggered.connect(on_trigger)
        return action

    # ------------------------------------------------------------------ choices

    def _language_choices(self) -> tuple[tuple[str, str], ...]:
        """The active model's languages only (Fun-ASR-Nano has 3 of MLT-Nano's 31)."""
        model = self.settings.get(S.MODEL)
        return tuple((language.code, language.label) for language in languages_of(model))

    def _choice_menu(
        self, setting: S.Setting[Any], choices: tuple[tuple[Any, str], ...] | None = None
    ) -> QMenu:
        menu = QMenu(setting.label, self)
        self._fill_choices(menu, setting, setting.choices if choices is None else choices)
        return menu

    def _fill_choices(
        self, menu: QMenu, setting: S.Setting[Any], choices: tuple[tuple[Any, str], ...]
    ) -> None:
        menu.clear()
        old = self._groups.get(setting.name)
        if old is not None:
            old.deleteLater()
        group = QActionGroup(menu)
        group.setExclusive(True)
        current = self.settings.get(setting)
        for value, label in choices:
            action = QAction(label, menu)
            action.setCheckable(True)
            action.setChecked(value == current)
            action.setData(value)
            action.triggered.connect(lambda _checked=False, v=value, s=setting: self._choose(s, v))
            group.addAction(action)
            menu.addAction(action)
        self._groups[setting.name] = group

    def _choose(self, setting: S.Setting[Any], value: Any) -> None:
        try:
            self.settings.set(setting, value)
        except ValueError:
            log.exception("Menu choice for %s rejected", setting.name)

    def _on_setting(self, setting: S.Setting[Any], value: Any) -> None:
        if setting is S.MODEL:
            self._model_changed()
        group = self._groups.get(setting.name)
        if group is None:
            return
        for action in group.actions():
            action.setChecked(action.data() == value)

    def _model_changed(self) -> None:
        """Offer the new model's languages; a language it lacks becomes its first one, so
        no dictation asks a model for a language it was not trained on."""
        choices = self._language_choices()
        self._fill_choices(self.language_menu, S.LANGUAGE, choices)
        if self.settings.get(S.LANGUAGE) not in [code for code, _name in choices]:
            self._choose(S.LANGUAGE, choices[0][0])

    def checked_value(self, setting: S.Setting[Any]) -> Any:
        """The value whose item is checked (for tests and accessibility checks)."""
        checked = self._groups[setting.name].checkedAction()
        return None if checked is None else checked.data()

    def group_actions(self, setting: S.Setting[Any]) -> list[QAction]:
        return list(self._groups[setting.name].actions())

    # ------------------------------------------------------------------ dynamic parts

    def _refresh_status(self) -> None:
        self.unload_action.setEnabled(self.controller.engine.state != "unloaded")
        self.status_action.setText(status_text(self.controller.state, self.controller.error))

    def show_download(self, visible: bool, text: str | None = None) -> None:
        self.download_action.setVisible(visible)
        self.download_action.setText(text or "Download the speech model…")

    def edit_profiles(self) -> None:
        """Open the profiles file in the user's editor (written with the examples first)."""
        try:
            path = ProfileBook(S.profiles_file()).ensure_file()
        except OSError as error:
            log.warning("Cannot write the profiles file: %s", error)
            QMessageBox.warning(None, "Per-app profiles", f"Cannot write the file: {error}")
            return
        if not self._open_file(path):
            QMessageBox.information(
                None, "Per-app profiles", f"Open this file in a text editor:\n{path}"
            )

    def _fill_microphones(self) -> None:
        menu = self.microphone_menu
        menu.clear()
        current = self.settings.get(S.MICROPHONE)
        group = QActionGroup(menu)
        for name, label in [("", "System default"), *((n, n) for n in self._list_microphones())]:
            action = QAction(label, menu)
            action.setCheckable(True)
            action.setChecked(name == current)
            action.triggered.connect(lambda _checked=False, n=name: self._choose(S.MICROPHONE, n))
            group.addAction(action)
            menu.addAction(action)

    def _fill_recent(self) -> None:
        menu = self.recent_menu
        menu.clear()
        entries = self.history.recent(RECENT_COUNT)
        if not entries:
            menu.addAction("No transcriptions yet").setEnabled(False)
            return
        for entry in entries:
            self._entry_menu(menu.addMenu(_short(entry.text)), entry)
        menu.addSeparator()
        menu.addAction("Clear history…").triggered.connect(self.history_actions.clear_history)

    def _entry_menu(self, menu: QMenu, entry: Entry) -> None:
        actions = self.history_actions
        menu.addAction("Copy").triggered.connect(lambda: copy_text(entry.text))
        retranscribe = menu.addAction("Re-transcribe…")
        retranscribe.triggered.connect(lambda: actions.retranscribe(entry))
        if not actions.can_retranscribe(entry):
            retranscribe.setEnabled(False)
            retranscribe.setToolTip("Its audio was not kept (Settings → System).")
        menu.addAction("Add replacement…").triggered.connect(lambda: actions.add_replacement(entry))
        menu.addAction("Add to hotwords…").triggered.connect(lambda: actions.add_hotwords(entry))


def _open_in_editor(path: Path) -> bool:
    return QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))


def copy_text(text: str) -> None:
    QGuiApplication.clipboard().setText(text)
