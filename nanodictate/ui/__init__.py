"""The Qt side of nanodictate: tray, menus, settings window, and the threads that keep the
GUI responsive. Everything here adapts `nanodictate.core` to Qt; no speech logic lives here."""
