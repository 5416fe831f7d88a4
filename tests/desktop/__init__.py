"""End-to-end tests on a real, private desktop (Xvfb, trayer, PulseAudio): see harness.py."""
