"""Uploaded audio -> 16 kHz mono float32 samples, through miniaudio (PyPI: dr_wav, dr_mp3,
dr_flac and stb_vorbis, with its resampler). WAV at any common rate and sample format, MP3, FLAC
and Ogg Vorbis decode; anything else is a BadRequest naming what is accepted.
"""

from __future__ import annotations

import miniaudio  # type: ignore[import-untyped]
import numpy as np
import numpy.typing as npt

from mdl.runtime.errors import BadRequest
from mdl.runtime.speech import SAMPLE_RATE

FORMATS = "WAV, MP3, FLAC or Ogg Vorbis"
Samples = npt.NDArray[np.float32]


def decode(data: bytes, filename: str) -> Samples:
    """The audio's samples, mono at 16 kHz."""
    if not data:
        raise BadRequest(f"file {filename!r} is empty")
    try:
        sound = miniaudio.decode(
            data,
            output_format=miniaudio.SampleFormat.FLOAT32,
            nchannels=1,
            sample_rate=SAMPLE_RATE,
        )
    except miniaudio.MiniaudioError as exc:
        raise BadRequest(f"file {filename!r}: cannot decode the audio (send {FORMATS})") from exc
    samples = np.frombuffer(sound.samples, dtype=np.float32)
    if samples.size == 0:
        raise BadRequest(f"file {filename!r} holds no audio samples")
    return samples
