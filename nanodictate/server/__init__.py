"""The team server: ``nanodictate serve``, an OpenAI-compatible transcription API on Ray Serve.

Layout, top to bottom: `command` (the CLI's options, starting Ray), `deployment` (the Ray Serve
deployment: HTTP routes, batching, metrics, idle unload), `upload` (reading and checking one
request), `auth` (bearer tokens from the admin's file), `batch_decode` (several requests
through one batched decoder call), `responses` (json / text / verbose_json). Only `command`
and `deployment` import Ray; nothing here is imported by the tray app.
"""
