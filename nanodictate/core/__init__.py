"""The Qt-free pipeline: audio in → engine (load / transcribe / unload) → text out → history."""
