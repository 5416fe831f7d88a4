"""nanodictate: local, private dictation with Fun-ASR-MLT-Nano.

Importing the package is cheap on purpose: torch, funasr and librosa are imported by the
engine on its worker thread, the first time a model is loaded.
"""

__version__ = "0.1.0"
