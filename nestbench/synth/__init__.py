"""Offline synthetic speech for tests, demos and parity fixtures.

Kept free of imports from the rest of ``nestbench`` so a foreign environment (e.g. the NeMo oracle
venv) can import it with only numpy and, for resampling, torchaudio.
"""

from nestbench.synth.espeak import NATIVE_SAMPLE_RATE, Voice, available_voices, synthesize

__all__ = ["NATIVE_SAMPLE_RATE", "Voice", "available_voices", "synthesize"]
