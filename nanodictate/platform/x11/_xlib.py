"""Small python-xlib helpers shared by the X11 backends.

python-xlib speaks the X protocol in pure Python (no libX11), so a few things libX11 offers
are written here: the XKB per-client flag that makes key repeat "detectable", a fresh keysym
→ keycode lookup (python-xlib caches the keymap at connect time), and the modifier masks that
Alt, Super and NumLock have on this server.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from Xlib import XK, X
from Xlib import display as xdisplay
from Xlib import error as xerror
from Xlib.protocol import rq

for _group in ("xkb", "xf86", "publishing", "technical", "special"):
    XK.load_keysym_group(_group)

Display = Any  # Xlib.display.Display (python-xlib has no type hints)

# ---------------------------------------------------------------------------------------------
# Connection
# ---------------------------------------------------------------------------------------------


class X11ConnectionError(Exception):
    """The X server cannot be reached (no $DISPLAY, refused, or gone)."""


def open_display(display_name: str | None = None) -> Display:
    """Connect to `display_name` (default $DISPLAY); X11ConnectionError with a reason if not."""
    name = display_name if display_name is not None else os.environ.get("DISPLAY", "")
    if not name:
        raise X11ConnectionError("$DISPLAY is not set")
    try:
        return xdisplay.Display(name)
    except (xerror.DisplayError, OSError) as exc:
        raise X11ConnectionError(f"cannot connect to the X server {name!r}: {exc}") from exc
    except Exception as exc:  # python-xlib raises assorted errors for a bad display string
        raise X11ConnectionError(f"cannot connect to the X server {name!r}: {exc}") from exc


# ---------------------------------------------------------------------------------------------
# XKB: detectable auto-repeat (XkbSetDetectableAutoRepeat), as raw requests
# ---------------------------------------------------------------------------------------------

_XKB_USE_CORE_KBD = 0x0100
_XKB_PCF_DETECTABLE_AUTO_REPEAT = 1 << 0


class _XkbUseExtension(rq.ReplyRequest):  # type: ignore[misc]
    _request = rq.Struct(
        rq.Card8("opcode"),
        rq.Opcode(0),
        rq.RequestLength(),
        rq.Card16("wanted_major"),
        rq.Card16("wanted_minor"),
    )
    _reply = rq.Struct(
        rq.ReplyCode(),
        rq.Bool("supported"),
        rq.Card16("sequence_number"),
        rq.Card32("length"),
        rq.Card16("server_major"),
        rq.Card16("server_minor"),
        rq.Pad(20),
    )


class _XkbPerClientFlags(rq.ReplyRequest):  # type: ignore[misc]
    _request = rq.Struct(
        rq.Card8("opcode"),
        rq.Opcode(21),
        rq.RequestLength(),
        rq.Card16("device_spec"),
        rq.Pad(2),
        rq.Card32("change"),
        rq.Card32("value"),
        rq.Card32("ctrls_to_change"),
        rq.Card32("auto_ctrls"),
        rq.Card32("auto_ctrls_values"),
    )
    _reply = rq.Struct(
        rq.ReplyCode(),
        rq.Card8("device_id"),
        rq.Card16("sequence_number"),
        rq.Card32("length"),
        rq.Card32("supported"),
        rq.Card32("value"),
        rq.Card32("auto_ctrls"),
        rq.Card32("auto_ctrls_values"),
        rq.Pad(8),
    )


class _XkbSelectEvents(rq.Request):  # type: ignore[misc]
    _request = rq.Struct(
        rq.Card8("opcode"),
        rq.Opcode(1),
        rq.RequestLength(),
        rq.Card16("device_spec"),
        rq.Card16("affect_which"),
        rq.Card16("clear"),
        rq.Card16("select_all"),
        rq.Card16("affect_map"),
        rq.Card16("map"),
    )


_XKB_MAP_NOTIFY_MASK = 1 << 1
_XKB_ALL_MAP_COMPONENTS = 0xFF


def select_xkb_map_notify(display: Display) -> int | None:
    """Ask for XkbMapNotify events; returns their event type, or None without XKB.

    A client that has called XkbUseExtension (as `set_detectable_autorepeat` does) no longer
    gets the core MappingNotify when the keymap changes; it must select XKB's own event.
    """
    info = display.query_extension("XKEYBOARD")
    if info is None:
        return None
    _XkbSelectEvents(
        display=display.display,
        opcode=info.major_opcode,
        device_spec=_XKB_USE_CORE_KBD,
        affect_which=_XKB_MAP_NOTIFY_MASK,
        clear=0,
        select_all=_XKB_MAP_NOTIFY_MASK,
        affect_map=_XKB_ALL_MAP_COMPONENTS,
        map=_XKB_ALL_MAP_COMPONENTS,
    )
    return int(info.first_event)


def set_detectable_autorepeat(display: Display) -> bool:
    """XkbSetDetectableAutoRepeat(display, True) for this connection.

    With it, a held key sends KeyPress, KeyPress, … KeyRelease instead of pairs of
    KeyRelease/KeyPress. Returns False when the server has no XKB or refuses the flag.
    """
    info = display.query_extension("XKEYBOARD")
    if info is None:
        return False
    try:
        use = _XkbUseExtension(
            display=display.display, opcode=info.major_opcode, wanted_major=1, wanted_minor=0
        )
        if not use.supported:
            return False
        reply = _XkbPerClientFlags(
            display=display.display,
            opcode=info.major_opcode,
            device_spec=_XKB_USE_CORE_KBD,
            change=_XKB_PCF_DETECTABLE_AUTO_REPEAT,
            value=_XKB_PCF_DETECTABLE_AUTO_REPEAT,
            ctrls_to_change=0,
            auto_ctrls=0,
            auto_ctrls_values=0,
        )
    except xerror.XError:
        return False
    return bool(reply.supported & reply.value & _XKB_PCF_DETECTABLE_AUTO_REPEAT)


# ---------------------------------------------------------------------------------------------
# Keysyms, keycodes and modifiers
# ---------------------------------------------------------------------------------------------


def keysym_from_name(name: str) -> int:
    """The keysym for an X keysym name ("F9", "space", "a", "Escape"); 0 when unknown.

    Tries the name as written, then in lower case and capitalised (hotkey names are
    case-insensitive for the user, X's names are not).
    """
    for candidate in (name, name.lower(), name[:1].upper() + name[1:], name.capitalize()):
        keysym = XK.string_to_keysym(candidate)
        if keysym != X.NoSymbol:
            return int(keysym)
    return 0


def keysym_for_char(char: str) -> int:
    """The keysym that types `char` (Latin-1 keysyms equal the code point; others use the
    Unicode keysym range 0x01000000 + code point)."""
    if char == "\n":
        return int(XK.XK_Return)
    if char == "\t":
        return int(XK.XK_Tab)
    code = ord(char)
    if 0x20 <= code <= 0x7E or 0xA0 <= code <= 0xFF:
        return code
    return 0x01000000 + code


@dataclass(frozen=True)
class KeyboardMap:
    """The server's keycode → keysyms table, read fresh (not python-xlib's connect-time cache)."""

    min_keycode: int
    rows: tuple[tuple[int, ...], ...]

    @classmethod
    def read(cls, display: Display) -> KeyboardMap:
        first = int(display.display.info.min_keycode)
        last = int(display.display.info.max_keycode)
        rows = display.get_keyboard_mapping(first, last - first + 1)
        return cls(min_keycode=first, rows=tuple(tuple(int(s) for s in row) for row in rows))

    def keysyms(self, keycode: int) -> tuple[int, ...]:
        index = keycode - self.min_keycode
        if 0 <= index < len(self.rows):
            return self.rows[index]
        return ()

    def lookup(self, keysym: int) -> list[tuple[int, int]]:
        """[(keycode, index)] where `keysym` is in the first group (index 0 plain, 1 shifted),
        best first."""
        found: list[tuple[int, int]] = []
        for offset, row in enumerate(self.rows):
            for index, value in enumerate(row[:2]):
                if value == keysym:
                    found.append((self.min_keycode + offset, index))
        found.sort(key=lambda pair: (pair[1], pair[0]))
        return found

    def keycodes_for(self, keysym: int) -> list[int]:
        """Every keycode that carries `keysym` (plain or shifted), lowest first."""
        codes = sorted({keycode for keycode, _ in self.lookup(keysym)})
        if not codes and keysym:
            # Upper-case letter keysyms sit at index 1 of the same key as their lower case.
            codes = sorted(
                self.min_keycode + offset
                for offset, row in enumerate(self.rows)
                if keysym in row[2:4]
            )
        return codes

    def spare_keycodes(self) -> list[int]:
        """Keycodes with no keysym at all, usable for a temporary mapping (as xdotool does)."""
        return [
            self.min_keycode + offset
            for offset, row in enumerate(self.rows)
            if all(value == X.NoSymbol for value in row)
        ]


@dataclass(frozen=True)
class ModifierMasks:
    """Which X modifier bit each logical modifier uses on this server."""

    ctrl: int = X.ControlMask
    shift: int = X.ShiftMask
    alt: int = X.Mod1Mask
    super: int = X.Mod4Mask
    lock: int = X.LockMask
    num_lock: int = X.Mod2Mask

    @classmethod
    def read(cls, display: Display, keymap: KeyboardMap | None = None) -> ModifierMasks:
        keymap = keymap or KeyboardMap.read(display)
        found: dict[str, int] = {}
        wanted = {
            int(XK.XK_Alt_L): "alt",
            int(XK.XK_Alt_R): "alt",
            int(XK.XK_Meta_L): "alt",
            int(XK.XK_Super_L): "super",
            int(XK.XK_Super_R): "super",
            int(XK.XK_Num_Lock): "num_lock",
        }
        for bit_index, keycodes in enumerate(display.get_modifier_mapping()):
            if bit_index < 3:  # Shift, Lock, Control have fixed bits
                continue
            for keycode in keycodes:
                if not keycode:
                    continue
                for keysym in keymap.keysyms(int(keycode)):
                    name = wanted.get(keysym)
                    if name is not None and name not in found:
                        found[name] = 1 << bit_index
        return cls(
            alt=found.get("alt", X.Mod1Mask),
            super=found.get("super", X.Mod4Mask),
            num_lock=found.get("num_lock", X.Mod2Mask),
        )

    def mask_for(self, modifiers: frozenset[str]) -> int:
        mask = 0
        for name in modifiers:
            mask |= getattr(self, name)
        return int(mask)

    @property
    def lock_variants(self) -> tuple[int, ...]:
        """Extra masks to grab each hotkey with, so it fires with CapsLock/NumLock on."""
        return (0, self.lock, self.num_lock, self.lock | self.num_lock)

    @property
    def relevant(self) -> int:
        """The bits that decide which hotkey a key event is (lock bits left out)."""
        return int(self.ctrl | self.shift | self.alt | self.super)


def keys_down(display: Display) -> list[int]:
    """Keycodes held down now (XQueryKeymap)."""
    keymap = display.query_keymap()
    return [
        byte_index * 8 + bit
        for byte_index, byte in enumerate(keymap)
        if byte
        for bit in range(8)
        if byte & (1 << bit)
    ]
