"""Small in-test stand-ins with the real APIs: a sounddevice module, the Engine, the platform
backends, a desktop's windows and clipboard, a notifier, and a controller for the tray and
menu. The real engine and desktop are exercised by their own tests."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from nanodictate.core.asr.placement import llm_compute_dtype
from nanodictate.core.dictation import AppState
from nanodictate.core.ports import WindowInfo
from nanodictate.core.transcriber import (
    EngineState,
    LoadReport,
    MemoryReport,
    Precision,
    Transcription,
)

# ------------------------------------------------------------------------------ sounddevice


class FakeStream:
    def __init__(self, sd: FakeSoundDevice, **kwargs: Any) -> None:
        self.sd = sd
        self.kwargs = kwargs
        self.callback = kwargs["callback"]
        self.finished_callback = kwargs.get("finished_callback")
        self.samplerate = kwargs["samplerate"]
        self.channels = kwargs["channels"]
        self.active = False
        self.closed = False

    def start(self) -> None:
        self.active = True

    def stop(self) -> None:
        # PortAudio calls the finished callback when a stream stops, also on our stop().
        if self.active:
            self.active = False
            if self.finished_callback is not None:
                self.finished_callback()

    def abort(self) -> None:
        self.stop()  # for an input stream the same, bar the pending buffers it drops

    def close(self) -> None:
        self.closed = True

    def feed(self, block: np.ndarray) -> None:
        """Deliver one block (frames × channels) as PortAudio's thread would."""
        block = np.asarray(block, dtype=np.float32)
        if block.ndim == 1:
            block = np.repeat(block[:, None], self.channels, axis=1)
        self.callback(block, len(block), None, None)

    def feed_seconds(self, seconds: float, value: float = 0.1, block: int = 480) -> None:
        frames = int(seconds * self.samplerate)
        for start in range(0, frames, block):
            n = min(block, frames - start)
            self.feed(np.full((n, self.channels), value, dtype=np.float32))

    def lose_device(self) -> None:
        self.active = False
        if self.finished_callback is not None:
            self.finished_callback()


class FakeSoundDevice:
    """The parts of the sounddevice module the recorder uses."""

    def __init__(self, rate: int = 48000, channels: int = 2, *, devices: int = 1) -> None:
        self.rate = rate
        self.channels = channels
        self.devices = [
            {
                "name": f"Mic {i}",
                "max_input_channels": channels,
                "max_output_channels": 0,
                "default_samplerate": float(rate),
            }
            for i in range(devices)
        ]
        self.default = SimpleNamespace(device=[0, 0])
        self.streams: list[FakeStream] = []
        self.fail_open = False
        self.played: list[Any] = []

    def query_devices(self, device: Any = None, kind: str | None = None) -> Any:
        if kind is None and device is None:
            return list(self.devices)
        if not self.devices:
            raise ValueError("No input device matching")
        if device is None:
            return self.devices[0]
        if isinstance(device, int):
            return self.devices[device]
        for info in self.devices:
            if info["name"] == device:
                return info
        raise ValueError(f"No input device matching {device!r}")

    def InputStream(self, **kwargs: Any) -> FakeStream:
        if self.fail_open:
            raise RuntimeError("Error opening InputStream: Device unavailable")
        stream = FakeStream(self, **kwargs)
        self.streams.append(stream)
        return stream

    def play(self, data: Any, rate: int, blocking: bool = False) -> None:
        self.played.append((data, rate))

    @property
    def stream(self) -> FakeStream:
        return self.streams[-1]


# ------------------------------------------------------------------------------ engine


class FakeEngine:
    """The Engine API; says `text` for any audio (empty for all-zero audio)."""

    def __init__(self, text: str = "hello world", load_seconds: float = 0.0) -> None:
        self.text = text
        self.load_seconds = load_seconds
        self.on_state_change: Callable[[EngineState], None] | None = None
        self._state = EngineState.UNLOADED
        self.device = "cpu"
        self.gpu_bf16 = True  # False: a simulated GPU without bf16 (T4, V100, GTX 10/16)
        self.calls: list[tuple[Any, ...]] = []
        self.load_error: BaseException | None = None
        self.gate: threading.Event | None = None  # when set, load waits for it
        self.threads: set[str] = set()

    @property
    def state(self) -> EngineState:
        return self._state

    def _set(self, state: EngineState) -> None:
        self._state = state
        if self.on_state_change is not None:
            self.on_state_change(state)

    def load(self, precision: Any = "int8", device: Any = "auto") -> LoadReport:
        self.threads.add(threading.current_thread().name)
        self.calls.append(("load", str(precision), str(device)))
        if self._state in (EngineState.READY, EngineState.OFFLOADED):
            self._set(EngineState.READY)
            return self._report(precision, 0.0, True)
        self._set(EngineState.LOADING)
        if self.gate is not None:
            self.gate.wait(5)
        if self.load_error is not None:
            self._set(EngineState.UNLOADED)
            raise self.load_error
        self._set(EngineState.READY)
        return self._report(precision, self.load_seconds or 0.01, False)

    def _report(self, precision: Any, seconds: float, from_cache: bool) -> LoadReport:
        compute = llm_compute_dtype(Precision(precision), self.device, self.gpu_bf16)
        return LoadReport(
            Precision(precision),
            self.device,
            seconds,
            from_cache,
            None,
            compute.dtype,
            compute.note,
        )

    def transcribe(
        self,
        audio: Any,
        sample_rate: int | None = None,
        *,
        language: str = "en",
        hotwords: Sequence[str] = (),
        itn: bool = True,
    ) -> Transcription:
        self.calls.append(("transcribe", language, tuple(hotwords), itn))
        return self.hear(np.asarray(audio, dtype=np.float32), sample_rate or 16000, language)

    def hear(self, samples: np.ndarray, sample_rate: int, language: str) -> Transcription:
        """What this engine says for `samples`: `text` for any sound, nothing for silence (a
        stand-in that says something else overrides this alone)."""
        text = self.text if np.any(samples) else ""
        return Transcription(text, language, len(samples) / sample_rate)

    def unload(self) -> None:
        self.calls.append(("unload",))
        if self._state is not EngineState.UNLOADED:
            self._set(EngineState.UNLOADED)

    def offload(self) -> bool:
        self.calls.append(("offload",))
        if self.device != "cuda" or self._state is not EngineState.READY:
            return False
        self._set(EngineState.OFFLOADED)
        return True

    def memory_report(self) -> MemoryReport:
        held = 0 if self._state is EngineState.UNLOADED else 300 << 20
        return MemoryReport(100 << 20, held, 0)

    def names(self) -> list[str]:
        return [call[0] for call in self.calls]


# ------------------------------------------------------------------------------ platform


class FakeHotkeys:
    name = "fake"
    temporary_grabs = True

    def __init__(self, taken: Sequence[str] = ()) -> None:
        self.taken = set(taken)
        self.registered: dict[str, Any] = {}
        self.on_event: Callable[[str, bool], None] | None = None

    def availability(self) -> tuple[bool, str]:
        return True, ""

    def start(self, on_event: Callable[[str, bool], None]) -> None:
        self.on_event = on_event

    def register(self, hotkey_id: str, hotkey: Any) -> None:
        from nanodictate.platform.base import HotkeyTakenError

        if str(hotkey).lower() in self.taken:
            raise HotkeyTakenError(hotkey)
        self.registered[hotkey_id] = hotkey

    def unregister(self, hotkey_id: str) -> None:
        self.registered.pop(hotkey_id, None)

    def stop(self) -> None:
        pass

    def fire(self, hotkey_id: str, pressed: bool) -> None:
        """Deliver an event from another thread, as a real backend does."""
        assert self.on_event is not None
        thread = threading.Thread(target=self.on_event, args=(hotkey_id, pressed))
        thread.start()
        thread.join()


class FakeFocus:
    name = "fake"

    def __init__(self) -> None:
        self.window = WindowInfo(42, "Editor", "editor", is_terminal=False)
        self.refocused: list[Any] = []

    def focused_window(self) -> Any:
        return self.window

    def refocus(self, window: Any) -> bool:
        self.refocused.append(window)
        self.window = window
        return True


class FakeDesktop:
    """Windows with one clipboard between them, as the keyboard and clipboard ports see them:
    the keys go to the window with focus; Ctrl+V inserts the clipboard, Backspace deletes,
    Enter sends the window's line."""

    name = "fake"

    def __init__(self, focus: FakeFocus, clipboard: str = "") -> None:
        self.focus = focus
        self.text: dict[int, str] = {}  # window id → what its input line holds
        self.sent: dict[int, list[str]] = {}  # window id → the lines Enter sent
        self.paste_keys: dict[int, list[str]] = {}
        self.clipboard = clipboard
        self.read = False

    def _window(self) -> int:
        return int(self.focus.window.id)

    # --- ClipboardPort
    def snapshot(self) -> object:
        return self.clipboard

    def put_text(self, text: str) -> None:
        self.clipboard = text

    def read_text(self) -> str | None:
        return self.clipboard

    def arm_read_detection(self) -> None:
        self.read = False

    def was_read(self) -> bool | None:
        return self.read

    def restore(self, snapshot: object) -> None:
        self.clipboard = str(snapshot)

    # --- KeyboardOutput and BackspaceKeyboard
    def availability(self) -> tuple[bool, str]:
        return True, ""

    def wait_until_keys_released(self, timeout: float) -> bool:
        return True

    def send_paste(self, *, terminal: bool) -> None:
        window = self._window()
        self.paste_keys.setdefault(window, []).append("ctrl+shift+v" if terminal else "ctrl+v")
        self.text[window] = self.text.get(window, "") + self.clipboard
        self.read = True

    def type_text(self, text: str) -> None:
        window = self._window()
        if text == "\n":
            self.sent.setdefault(window, []).append(self.text.pop(window, ""))
        else:
            self.text[window] = self.text.get(window, "") + text

    def send_backspaces(self, count: int) -> None:
        window = self._window()
        line = self.text.get(window, "")
        self.text[window] = line[: max(0, len(line) - count)]


class FakeNotifier:
    def __init__(self) -> None:
        self.messages: list[tuple[str, str, str]] = []
        self.actions: list[Any] = []

    def show(self, title: str, message: str, *, level: str = "info", action: Any = None) -> None:
        self.messages.append((title, message, level))
        self.actions.append(action)

    def titles(self) -> list[str]:
        return [title for title, _message, _level in self.messages]


# ------------------------------------------------------------------------------ controller


class StubDelivery(QObject):
    profile_changed = Signal(str)


class StubEngine:
    """The engine link as the tray and menu read it."""

    def __init__(self) -> None:
        self.state = "unloaded"
        self.memory: Any = None
        self.last_load: Any = None
        self.unloads: list[str] = []

    def unload(self, reason: str = "") -> None:
        self.unloads.append(reason)


class StubController(QObject):
    """The controller's signals and properties that the tray and the menu read; `delivery`
    is a real `TextDelivery` where a test needs its profiles."""

    state_changed = Signal(str)
    level_changed = Signal(float)
    memory_changed = Signal(object)
    engine_state_changed = Signal(str)

    def __init__(self, delivery: Any = None) -> None:
        super().__init__()
        self.state = AppState.UNLOADED
        self.error: str | None = None
        self.engine = StubEngine()
        self.unloads = self.engine.unloads
        self.delivery = delivery if delivery is not None else StubDelivery()
