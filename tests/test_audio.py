"""µ-law codec, WAV reading in every common encoding, resampling and frames."""

from __future__ import annotations

import math
import struct
import wave
from array import array
from pathlib import Path

import pytest

from supactl.simulator import audio


def _pcm_wav(path: Path, samples: list[int], rate: int, width: int = 2, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        if width == 1:
            out.writeframes(bytes((s >> 8) + 128 for s in samples))
        elif width == 2:
            out.writeframes(array("h", samples).tobytes())
        elif width == 3:
            out.writeframes(b"".join((s << 8).to_bytes(3, "little", signed=True) for s in samples))
        else:
            out.writeframes(b"".join((s << 16).to_bytes(4, "little", signed=True) for s in samples))
    return path


def _raw_wav(path: Path, tag: int, bits: int, rate: int, body: bytes, channels: int = 1) -> Path:
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    riff = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(body)) + body
    path.write_bytes(b"RIFF" + struct.pack("<I", len(riff)) + riff)
    return path


def _tone(rate: int, seconds: float, amplitude: int = 10000) -> list[int]:
    return [int(amplitude * math.sin(2 * math.pi * 440 * n / rate)) for n in range(int(rate * seconds))]


def test_ulaw_encoding_matches_g711_reference_values():
    # Values from ITU-T G.711 as audioop.lin2ulaw / ulaw2lin produced them.
    assert audio.ulaw_encode([0, -1, 32767, -32768, 1000, -1000]) == bytes([0xFF, 0x7E, 0x80, 0x00, 0xCE, 0x4E])
    assert [audio.ULAW_DECODE[c] for c in (0xFF, 0x80, 0x00, 0xCE, 0x4E)] == [0, 32124, -32124, 988, -988]


def test_ulaw_decode_then_encode_is_identity_except_negative_zero():
    codes = bytes(range(256))
    again = audio.ulaw_encode(audio.ulaw_decode(codes))
    assert [c for c, d in zip(codes, again) if c != d] == [0x7F]  # -0 and +0 both decode to 0


def test_resampling_to_8khz_keeps_the_duration(tmp_path):
    for rate in (8000, 11025, 16000, 22050, 44100, 48000):
        source = audio.Audio(array("h", _tone(rate, 0.5)), rate)
        out = audio.resample(source, 8000)
        assert out.rate == 8000
        assert len(out.samples) == round(len(source.samples) * 8000 / rate)


def test_resampling_keeps_a_tone_audible():
    out = audio.resample(audio.Audio(array("h", _tone(48000, 0.2)), 48000))
    rms = (sum(s * s for s in out.samples) / len(out.samples)) ** 0.5
    assert 6000 < rms < 8000  # a 10000-peak sine has an RMS of 7071


@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_reads_pcm_wav_of_every_width(tmp_path, width):
    samples = _tone(16000, 0.1)
    loaded = audio.read_wav(_pcm_wav(tmp_path / "t.wav", samples, 16000, width))
    assert loaded.rate == 16000 and len(loaded.samples) == len(samples)
    tolerance = 256 if width == 1 else 1
    assert all(abs(a - b) <= tolerance for a, b in zip(loaded.samples, samples))


def test_mixes_stereo_down_to_mono(tmp_path):
    left, right = [1000] * 80, [3000] * 80
    interleaved = [v for pair in zip(left, right) for v in pair]
    loaded = audio.read_wav(_pcm_wav(tmp_path / "s.wav", interleaved, 8000, 2, channels=2))
    assert list(loaded.samples) == [2000] * 80


def test_reads_ulaw_and_float_wav(tmp_path):
    codes = audio.ulaw_encode(_tone(8000, 0.1))
    loaded = audio.read_wav(_raw_wav(tmp_path / "u.wav", 7, 8, 8000, codes))
    assert audio.ulaw_encode(loaded.samples) == codes
    floats = array("f", [0.5, -0.5, 0.0]).tobytes()
    assert list(audio.read_wav(_raw_wav(tmp_path / "f.wav", 3, 32, 8000, floats)).samples) == [16383, -16383, 0]


def test_refuses_what_is_not_a_wav(tmp_path):
    bogus = tmp_path / "x.wav"
    bogus.write_bytes(b"ID3 not a wav at all")
    with pytest.raises(audio.AudioError, match="not a WAV"):
        audio.read_wav(bogus)
    with pytest.raises(audio.AudioError, match="unsupported WAV encoding"):
        audio.read_wav(_raw_wav(tmp_path / "adpcm.wav", 2, 16, 8000, b"\x00" * 64))


def test_frames_are_160_bytes_and_the_last_is_padded_with_silence():
    out = audio.frames(b"\x10" * 400)
    assert [len(f) for f in out] == [160, 160, 160]
    assert out[-1][80:] == bytes([audio.ULAW_SILENCE]) * 80


def test_bundled_sample_is_a_few_seconds_of_speech():
    path = audio.sample_caller_wav()
    assert path.stat().st_size < 100_000
    ulaw = audio.wav_to_ulaw(path)
    assert 2.0 < len(ulaw) / 8000 < 8.0
    assert audio.ulaw_rms(ulaw) > 500  # not silence


def test_heard_audio_round_trips_through_a_wav(tmp_path):
    codes = audio.ulaw_encode(_tone(8000, 0.2))
    audio.write_ulaw_as_wav(tmp_path / "heard.wav", codes)
    assert audio.wav_to_ulaw(tmp_path / "heard.wav") == codes
