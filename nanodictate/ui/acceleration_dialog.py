"""What this computer can run: the GPU acceleration step and the doctor's report, the tray's
two windows about the machine rather than the dictation.

`AccelerationStep`: at the first run of an installed app, and from the tray's "GPU
acceleration…", find the NVIDIA GPUs (`core.acceleration`), say which torch build suits them
and how much it downloads, and install it only when the user says so. The installer's uv does
it on a background lane (`core.runtime_install`), checks the build with one CUDA operation,
and goes back to the CPU build, remembering the failure, when it does not work. A runtime
of several GB is never replaced unasked.

`DoctorReport`: the lines of `nanodictate doctor` in a window with a Copy button.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, Slot
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
)

from nanodictate.core.acceleration import Choice, Variant, choose_variant, survey, variant_named
from nanodictate.core.models.store import human_size
from nanodictate.core.runtime_install import InstallState, RuntimeInstaller, system_name
from nanodictate.ui.background import BackgroundLane
from nanodictate.ui.notifications import NotifierLike
from nanodictate.ui.tray import Tray

log = logging.getLogger(__name__)


def acceleration_note(state: InstallState) -> str:
    """The tooltip's line: the build in use, and a failure worth knowing."""
    try:
        label = variant_named(state.variant).label if state.variant else "not installed"
    except ValueError:
        label = state.variant
    failed = ", ".join(variant_named(name).label for name in state.failed_variants)
    return f"Acceleration: {label}" + (f" ({failed} failed here)" if failed else "")


def offer_text(choice: Choice, state: InstallState, system: str) -> str:
    """What the dialog says: what was found, what it would install and how big it is."""
    lines = [f"Found: {choice.reason}."]
    if choice.warning:
        lines.append(choice.warning + ".")
    variant = choice.variant
    if variant.name == state.variant:
        lines.append(f"nanodictate already uses the best build for it: {variant.label}.")
    elif not variant.uses_gpu:
        lines.append("nanodictate runs on the processor (CPU) here.")
    else:
        size = human_size(variant.download_bytes[system])
        lines.append(
            f"nanodictate can use the GPU with PyTorch's {variant.label} build: about {size} "
            "to download from download.pytorch.org, installed beside the app. It is checked "
            "with one GPU operation; if that fails, the CPU build is put back."
        )
        if variant.name in state.failed_variants:
            lines.append(f"It failed here before: {state.failed_variants[variant.name]}")
    return "\n\n".join(lines)


def _wants_install(choice: Choice, state: InstallState) -> bool:
    return choice.variant.uses_gpu and choice.variant.name != state.variant


class AccelerationDialog(QDialog):
    """The offer; `accepted` means the user pressed Install."""

    def __init__(self, text: str, install_label: str | None) -> None:
        super().__init__()
        self.setWindowTitle("GPU acceleration")
        self.label = QLabel(text)
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        buttons = QDialogButtonBox()
        self.install_button: QPushButton | None = None
        if install_label is not None:
            self.install_button = QPushButton(install_label)
            # A stray Enter must not start gigabytes of traffic.
            self.install_button.setAutoDefault(False)
            buttons.addButton(self.install_button, QDialogButtonBox.ButtonRole.AcceptRole)
        close = QPushButton("Not now" if install_label else "Close")
        close.setDefault(True)
        buttons.addButton(close, QDialogButtonBox.ButtonRole.RejectRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.label)
        layout.addWidget(buttons)
        self.setMinimumWidth(460)


class AccelerationStep(QObject):
    def __init__(
        self,
        installer: RuntimeInstaller,
        notifier: NotifierLike,
        tray: Tray,
        lane: BackgroundLane | None = None,
        choose: Callable[[], Choice] | None = None,
    ) -> None:
        super().__init__()
        self.installer = installer
        self._notifier = notifier
        self._tray = tray
        self._lane = lane or BackgroundLane("runtime")
        self._choose = choose or (lambda: choose_variant(survey(), system_name()))
        self.dialog: AccelerationDialog | None = None
        self.installing: Variant | None = None

    def _show_state(self, note: str | None = None) -> None:
        self._tray.acceleration_note = note or acceleration_note(self.installer.state())
        self._tray.update_tooltip()

    def at_start(self) -> None:
        """Show the build in use; on the first run, offer a better one if there is one."""
        self._show_state()
        if not self.installer.state().gpu_offered:
            self._lane.run(self._choose, self._first_offer)

    def _first_offer(self, choice: Choice) -> None:
        state = self.installer.state()
        state.gpu_offered = True
        state.save(self.installer.layout.state_file)
        if _wants_install(choice, state) and choice.variant.name not in state.failed_variants:
            self._open(choice)

    @Slot()
    def open(self) -> None:
        """From the tray: look at the GPUs again and show what fits."""
        if self.installing is None:
            self._lane.run(self._choose, self._open)

    def _open(self, choice: Choice) -> None:
        if self.dialog is not None:
            self.dialog.close()
        state = self.installer.state()
        install = None
        if _wants_install(choice, state):
            size = human_size(choice.variant.download_bytes[self.installer.layout.system])
            install = f"Install {choice.variant.label} ({size})"
        self.dialog = AccelerationDialog(
            offer_text(choice, state, self.installer.layout.system), install
        )
        self.dialog.accepted.connect(lambda: self._install(choice.variant))
        self.dialog.show()
        self.dialog.raise_()

    def _install(self, variant: Variant) -> None:
        log.info("The user asked for torch %s", variant.name)
        self.installing = variant
        self._show_state(f"Acceleration: installing {variant.label}…")
        self._lane.run(
            lambda: self.installer.switch_torch(variant),
            lambda problem: self._installed(variant, problem),
        )

    def _installed(self, variant: Variant, problem: str | None) -> None:
        self.installing = None
        self._show_state()
        if problem is None:
            self._notifier.show(
                "GPU acceleration installed",
                f"{variant.label} works here. Restart nanodictate to dictate with it.",
            )
        else:
            self._notifier.show(
                "GPU acceleration failed",
                f"{variant.label} did not work here ({problem}). nanodictate stays on the CPU.",
                level="error",
            )


class DoctorReport(QDialog):
    """The doctor's lines, selectable, with a Copy button for a bug report."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__()
        self.setWindowTitle("nanodictate: this computer")
        self.text = QPlainTextEdit("\n".join(lines))
        self.text.setReadOnly(True)
        copy = QPushButton("Copy")
        copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.text.toPlainText()))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.addButton(copy, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        layout.addWidget(buttons)
        self.resize(720, 420)


def doctor_lines() -> list[str]:
    """The report without the desktop checks: in the running app they would find its own
    hotkeys taken. Run on a background lane: it imports torch in a child process."""
    from nanodictate.doctor import report

    lines = [check.line() for check in report(desktop=False)]
    command = f"{sys.executable} -m nanodictate.doctor"
    return [*lines, f"(hotkeys, tray and paste: quit the app and run `{command}`)"]


class DoctorLauncher(QObject):
    """The tray's "Check this computer…": the report, gathered on a lane, in a window."""

    def __init__(self, lane: BackgroundLane) -> None:
        super().__init__()
        self._lane = lane
        self.window: DoctorReport | None = None

    @Slot()
    def open(self) -> None:
        self._lane.run(doctor_lines, self._show)

    def _show(self, lines: list[str]) -> None:
        self.window = DoctorReport(lines)
        self.window.show()
        self.window.raise_()
