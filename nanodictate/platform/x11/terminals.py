"""Which X11 windows are terminal emulators, and how a paste reaches each, by WM_CLASS.

Ctrl+V is a control character in a terminal, so the text output sends another key there: most
terminals paste the clipboard on Ctrl+Shift+V, the xterm family pastes PRIMARY on Shift+Insert.
"""

from __future__ import annotations

from collections.abc import Iterable

#: Terminals whose stock key bindings have no Ctrl+Shift+V paste but paste the PRIMARY
#: selection on Shift+Insert (lower case, a subset of TERMINAL_WINDOW_CLASSES):
#: - xterm / uxterm / koi8rxterm: the default translations bind Shift+Insert to
#:   insert-selection(SELECT, CUT_BUFFER0) (PRIMARY, or CLIPBOARD with selectToClipboard);
#:   Ctrl+Shift+V just sends ^V.
#: - rxvt, rxvt-unicode (urxvt): Shift+Insert pastes PRIMARY; in urxvt Ctrl+Shift starts
#:   ISO 14755 character entry, so Ctrl+Shift+V types nothing useful. Its CLIPBOARD paste is
#:   Ctrl+Meta+V (9.20+), which older versions lack.
#: - aterm, Eterm, mrxvt: rxvt derivatives with the same Shift+Insert paste.
#: Not here: st binds Ctrl+Shift+V to a CLIPBOARD paste (config.def.h, `TERMMOD, XK_V`), as do
#: gnome-terminal, konsole, alacritty, kitty, xfce4-terminal and the other VTE/Qt terminals.
PRIMARY_PASTE_WINDOW_CLASSES: frozenset[str] = frozenset(
    {
        "xterm",
        "uxterm",
        "koi8rxterm",
        "rxvt",
        "urxvt",
        "urxvt-unicode",
        "rxvt-unicode",
        "aterm",
        "eterm",
        "mrxvt",
    }
)


#: Window classes (lower case) of terminal emulators, where Ctrl+V is a control character:
#: most paste with Ctrl+Shift+V, those in PRIMARY_PASTE_WINDOW_CLASSES with Shift+Insert.
#: Matched against both parts of X11's WM_CLASS (instance and class).
TERMINAL_WINDOW_CLASSES: frozenset[str] = PRIMARY_PASTE_WINDOW_CLASSES | frozenset(
    {
        "gnome-terminal",
        "gnome-terminal-server",
        "org.gnome.terminal",
        "kgx",
        "org.gnome.console",
        "ptyxis",
        "org.gnome.ptyxis",
        "konsole",
        "org.kde.konsole",
        "yakuake",
        "alacritty",
        "kitty",
        "wezterm",
        "org.wezfurlong.wezterm",
        "foot",
        "footclient",
        "terminator",
        "tilix",
        "com.gexperts.tilix",
        "xfce4-terminal",
        "st",
        "st-256color",
        "lxterminal",
        "qterminal",
        "mate-terminal",
        "terminology",
        "sakura",
        "guake",
        "tilda",
        "cool-retro-term",
        "termite",
        "roxterm",
        "deepin-terminal",
        "io.elementary.terminal",
        "pantheon-terminal",
        "ghostty",
        "com.mitchellh.ghostty",
        "contour",
        "rio",
        "zutty",
        "hyper",
        "tabby",
        "blackbox",
        "com.raggesilver.blackbox",
        "warp",
    }
)


def _matches(names: Iterable[str], classes: frozenset[str]) -> bool:
    return any(name.strip().lower() in classes for name in names if name)


def is_terminal_class(names: Iterable[str]) -> bool:
    """True when any of the window class names is a known terminal emulator."""
    return _matches(names, TERMINAL_WINDOW_CLASSES)


def pastes_primary_class(names: Iterable[str]) -> bool:
    """True when the window class names a terminal that pastes PRIMARY on Shift+Insert."""
    return _matches(names, PRIMARY_PASTE_WINDOW_CLASSES)
