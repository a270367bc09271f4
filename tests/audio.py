"""Real audio for tests, made at test time with the standard library (no recordings in the repository)."""

import io
import math
import struct
import wave


def wav_tone(*, seconds: float, frequency: float = 440.0, rate: int = 16000) -> bytes:
    """A mono 16-bit PCM WAV of a sine tone: a valid recording any audio reader opens."""
    frames = int(seconds * rate)
    samples = (int(12000 * math.sin(2 * math.pi * frequency * n / rate)) for n in range(frames))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(rate)
        audio.writeframes(b"".join(struct.pack("<h", sample) for sample in samples))
    return buffer.getvalue()
