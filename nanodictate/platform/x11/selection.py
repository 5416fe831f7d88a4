"""Does the program that owns an X selection (CLIPBOARD, PRIMARY) answer at all?

Reading a selection means asking its owner, which converts the content and answers with a
SelectionNotify event. An owner that hangs never answers, and Qt's QClipboard waits for the
answer on the GUI thread, about 5 s for each format it asks about: with an owner stopped
(SIGSTOP) the app's first read of the clipboard froze its GUI for 115 s, hotkeys and tray
included. So before the clipboard is read through Qt, the owner is asked for its TARGETS on a
connection of our own, off the GUI thread, and given a deadline.
"""

from __future__ import annotations

import logging
import select
import time

from Xlib import X

from nanodictate.platform.x11._xlib import open_display

log = logging.getLogger(__name__)


def selection_owner_answers(
    selection: str = "CLIPBOARD", timeout: float = 1.5, display_name: str | None = None
) -> bool:
    """True when nobody owns `selection` or its owner answers a TARGETS request within
    `timeout` seconds (a refusal is an answer too); False when it does not. Raises
    X11ConnectionError when the X server cannot be reached."""
    display = open_display(display_name)
    try:
        atom = display.intern_atom(selection)
        owner = display.get_selection_owner(atom)
        if isinstance(owner, int):  # X.NONE: nobody owns it
            return True
        window = display.screen().root.create_window(0, 0, 1, 1, 0, X.CopyFromParent)
        window.convert_selection(
            atom,
            display.intern_atom("TARGETS"),
            display.intern_atom("NANODICTATE_SELECTION_PROBE"),
            X.CurrentTime,
        )
        display.flush()
        deadline = time.monotonic() + timeout
        while True:
            while display.pending_events():
                event = display.next_event()
                if event.type == X.SelectionNotify and event.requestor.id == window.id:
                    return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                log.warning(
                    "The owner of the %s selection (window 0x%x) did not answer in %.1f s",
                    selection,
                    owner.id,
                    timeout,
                )
                return False
            select.select([display], [], [], remaining)
    finally:
        display.close()
