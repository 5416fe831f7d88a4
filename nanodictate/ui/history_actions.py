"""What the tray's Recent menu does with one history entry besides copying it: re-transcribe
its kept audio with another language, precision or hotwords, and add a replacement rule or
hotwords from its words, without opening the settings window."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QInputDialog,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QWidget,
)

from nanodictate import settings as S
from nanodictate.core.history import Entry
from nanodictate.core.languages import languages_of
from nanodictate.core.text_steps.replacements import replacement_problems

# (title, label, prefilled text) → the text the user confirmed, or None when cancelled.
AskText = Callable[[str, str, str], str | None]


@dataclass(frozen=True)
class RetranscribeChoice:
    language: str
    precision: str
    hotwords: tuple[str, ...]


def split_hotwords(text: str) -> list[str]:
    """Hotwords typed one a line or separated by commas, each once, in order."""
    words = (word.strip() for word in re.split(r"[\n,，]", text))
    return list(dict.fromkeys(word for word in words if word))


class RetranscribeDialog(QDialog):
    """Language, precision and hotwords for a re-transcription, starting from the entry's
    language and the current settings."""

    def __init__(self, settings: S.Settings, entry: Entry, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Re-transcribe")
        self.language = QComboBox()
        for language in languages_of(settings.get(S.MODEL)):
            self.language.addItem(language.label, language.code)
        self._select(self.language, entry.language)
        self.precision = QComboBox()
        for value, label in S.PRECISION.choices:
            self.precision.addItem(label, value)
        self._select(self.precision, settings.get(S.PRECISION))
        hotwords: list[str] = settings.get(S.HOTWORDS)
        self.hotwords = QPlainTextEdit("\n".join(hotwords))
        form = QFormLayout(self)
        form.addRow(S.LANGUAGE.label, self.language)
        form.addRow(S.PRECISION.label, self.precision)
        form.addRow(S.HOTWORDS.label, self.hotwords)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    @staticmethod
    def _select(box: QComboBox, value: Any) -> None:
        index = box.findData(value)
        if index >= 0:
            box.setCurrentIndex(index)

    def choice(self) -> RetranscribeChoice:
        return RetranscribeChoice(
            self.language.currentData(),
            self.precision.currentData(),
            tuple(split_hotwords(self.hotwords.toPlainText())),
        )


def _ask_text(title: str, label: str, text: str) -> str | None:
    answer, ok = QInputDialog.getText(None, title, label, QLineEdit.EchoMode.Normal, text)
    return answer if ok else None


def _ask_retranscribe(settings: S.Settings, entry: Entry) -> RetranscribeChoice | None:
    dialog = RetranscribeDialog(settings, entry)
    return dialog.choice() if dialog.exec() == QDialog.DialogCode.Accepted else None


def _tell_problem(title: str, message: str) -> None:
    QMessageBox.warning(None, title, message)


def _confirm(title: str, question: str) -> bool:
    buttons = QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel
    answer = QMessageBox.question(None, title, question, buttons, QMessageBox.StandardButton.Cancel)
    return answer == QMessageBox.StandardButton.Yes


class HistoryActions:
    """The actions of one Recent entry; the dialogs are passed in so tests answer them."""

    def __init__(
        self,
        settings: S.Settings,
        controller: Any,  # ui.controller.DictationController
        history: Any,  # core.history.History
        *,
        ask_text: AskText = _ask_text,
        ask_retranscribe: Callable[
            [S.Settings, Entry], RetranscribeChoice | None
        ] = _ask_retranscribe,
        tell_problem: Callable[[str, str], None] = _tell_problem,
        confirm: Callable[[str, str], bool] = _confirm,
    ) -> None:
        self.settings, self.controller, self.history = settings, controller, history
        self._ask_text, self._ask_retranscribe = ask_text, ask_retranscribe
        self._tell_problem, self._confirm = tell_problem, confirm

    def clear_history(self) -> bool:
        """Every transcription and its kept audio, after the user confirmed."""
        if not self._confirm(
            "Clear history",
            "Delete every transcription in the history, and the audio kept with them? "
            "This cannot be undone.",
        ):
            return False
        self.history.clear()
        return True

    def can_retranscribe(self, entry: Entry) -> bool:
        return bool(self.history.audio.has(entry.id))

    def retranscribe(self, entry: Entry) -> bool:
        choice = self._ask_retranscribe(self.settings, entry)
        if choice is None:
            return False
        return bool(
            self.controller.retranscribe(entry, choice.language, choice.precision, choice.hotwords)
        )

    def add_replacement(self, entry: Entry) -> bool:
        """Ask for a rule, prefilled "words => words" to edit; rejected rules are asked
        again with the problem shown, until the user confirms a valid one or cancels."""
        title = "Add replacement"
        label = "wrong => right (whole words, any case), or /regex/ => replacement"
        rule: str | None = f"{_one_line(entry.text)} => {_one_line(entry.text)}"
        while True:
            rule = self._ask_text(title, label, rule or "")
            if rule is None or not rule.strip():
                return False
            problems = replacement_problems([rule.strip()])
            if not problems:
                break
            self._tell_problem(title, "\n".join(problems))
        rules: list[str] = self.settings.get(S.REPLACEMENTS)
        if rule.strip() not in rules:
            self.settings.set(S.REPLACEMENTS, [*rules, rule.strip()])
        return True

    def add_hotwords(self, entry: Entry) -> bool:
        """Ask for hotwords, prefilled with the entry's words (one a line or comma-separated)."""
        answer = self._ask_text(
            "Add to hotwords", "Names and terms to favour, separated by commas:", entry.text
        )
        added = split_hotwords(answer or "")
        if not added:
            return False
        hotwords: list[str] = self.settings.get(S.HOTWORDS)
        self.settings.set(S.HOTWORDS, list(dict.fromkeys([*hotwords, *added])))
        return True


def _one_line(text: str) -> str:
    return " ".join(text.split())
