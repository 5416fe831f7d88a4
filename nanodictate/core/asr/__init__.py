"""Speech recognition with Fun-ASR-MLT-Nano: the engine, its weights (lean, checked, INT8),
funasr tamed, the FSMN-VAD guard, memory given back, and the engine in its own process.

Nothing here is imported at app start: torch and funasr load on the engine's first use.
"""
