"""Telephone audio: WAV in, 8 kHz µ-law frames out, and what was heard back to WAV.

Twilio Media Streams carry G.711 µ-law at 8 kHz, 20 ms (160 bytes) per frame
(https://www.twilio.com/docs/voice/media-streams/websocket-messages). G.711 is the standard
library's `audioop` (Python 3.11/3.12) or its drop-in `audioop-lts` (3.13+, where audioop was
removed), as other voice projects use it; only the WAV chunk reader is ours, because `wave`
reads PCM only.
"""

from __future__ import annotations

import struct
import sys
import warnings
import wave
from array import array
from dataclasses import dataclass
from pathlib import Path

with warnings.catch_warnings():
    # 3.11/3.12 warn that audioop leaves the standard library; audioop-lts takes over on 3.13.
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

TELEPHONE_RATE = 8000
FRAME_MS = 20
FRAME_BYTES = TELEPHONE_RATE * FRAME_MS // 1000  # 160 µ-law bytes = 20 ms
ULAW_SILENCE = 0xFF  # µ-law code of a zero sample
_SAMPLE_WIDTH = 2  # 16-bit linear samples, in the machine's byte order as audioop and array use

_WAVE_FORMAT_PCM = 0x0001
_WAVE_FORMAT_FLOAT = 0x0003
_WAVE_FORMAT_ALAW = 0x0006
_WAVE_FORMAT_ULAW = 0x0007
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE


class AudioError(ValueError):
    """A file is not audio this module can read."""


def _samples(linear: bytes) -> array:
    out = array("h")
    out.frombytes(linear)
    return out


def ulaw_encode(samples: array | list[int]) -> bytes:
    """16-bit linear samples to µ-law bytes (G.711)."""
    return audioop.lin2ulaw(array("h", samples).tobytes(), _SAMPLE_WIDTH)


def ulaw_decode(data: bytes) -> array:
    """µ-law bytes to 16-bit linear samples."""
    return _samples(audioop.ulaw2lin(data, _SAMPLE_WIDTH))


def alaw_decode(data: bytes) -> array:
    """A-law bytes to 16-bit linear samples."""
    return _samples(audioop.alaw2lin(data, _SAMPLE_WIDTH))


def ulaw_rms(data: bytes) -> float:
    """Root-mean-square level of µ-law audio on the 16-bit scale (the loopback model's VAD)."""
    if not data:
        return 0.0
    return float(audioop.rms(audioop.ulaw2lin(data, _SAMPLE_WIDTH), _SAMPLE_WIDTH))


# Every code's linear value, for readers that want one sample at a time.
ULAW_DECODE: tuple[int, ...] = tuple(ulaw_decode(bytes(range(256))))
ALAW_DECODE: tuple[int, ...] = tuple(alaw_decode(bytes(range(256))))


@dataclass
class Audio:
    """Mono 16-bit samples at `rate` Hz."""

    samples: array
    rate: int

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.rate if self.rate else 0.0


def read_wav(path: Path) -> Audio:
    """Any common WAV: PCM 8/16/24/32-bit, 32-bit float, µ-law or A-law; mono or multi-channel
    (mixed down); any rate. The chunks are parsed here because `wave` reads PCM only."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise AudioError(f"cannot read {path}: {exc.strerror}") from None
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioError(f"{path} is not a WAV file (no RIFF/WAVE header)")
    fmt = body = None
    offset = 12
    while offset + 8 <= len(data):
        chunk_id, size = data[offset:offset + 4], struct.unpack_from("<I", data, offset + 4)[0]
        chunk = data[offset + 8:offset + 8 + size]
        if chunk_id == b"fmt ":
            fmt = chunk
        elif chunk_id == b"data":
            body = chunk
        offset += 8 + size + (size & 1)  # chunks are word-aligned
    if fmt is None or body is None or len(fmt) < 16:
        raise AudioError(f"{path} has no fmt or data chunk")
    tag, channels, rate, _, block_align, bits = struct.unpack_from("<HHIIHH", fmt)
    if tag == _WAVE_FORMAT_EXTENSIBLE and len(fmt) >= 26:
        tag = struct.unpack_from("<H", fmt, 24)[0]  # first two bytes of the sub-format GUID
    if channels < 1 or rate < 1 or block_align < 1:
        raise AudioError(f"{path} has an invalid fmt chunk ({channels} channels, {rate} Hz)")
    body = body[: len(body) - len(body) % block_align]
    interleaved = _decode_samples(tag, bits, body, path)
    return Audio(_mix_down(interleaved, channels), rate)


def _decode_samples(tag: int, bits: int, body: bytes, path: Path) -> array:
    if tag == _WAVE_FORMAT_ULAW and bits == 8:
        return ulaw_decode(body)
    if tag == _WAVE_FORMAT_ALAW and bits == 8:
        return alaw_decode(body)
    if tag == _WAVE_FORMAT_FLOAT and bits == 32:
        floats = _little_endian(array("f", body))
        return array("h", (max(-32768, min(32767, int(f * 32767))) for f in floats))
    if tag == _WAVE_FORMAT_PCM:
        if bits == 8:  # 8-bit WAV is unsigned
            return array("h", ((b - 128) << 8 for b in body))
        if bits == 16:
            samples = _little_endian(array("h", body))
            if samples.itemsize != 2:  # pragma: no cover - exotic platforms
                raise AudioError("16-bit samples need a 2-byte short")
            return samples
        if bits == 24:
            return array("h", (int.from_bytes(body[i + 1:i + 3], "little", signed=True)
                               for i in range(0, len(body), 3)))
        if bits == 32:
            return array("h", (int.from_bytes(body[i + 2:i + 4], "little", signed=True)
                               for i in range(0, len(body), 4)))
    raise AudioError(
        f"{path}: unsupported WAV encoding (format tag {tag:#06x}, {bits} bits)",
    )


def _little_endian(values: array) -> array:
    if sys.byteorder == "big":  # WAV is little-endian on every platform
        values.byteswap()
    return values


def _mix_down(interleaved: array, channels: int) -> array:
    if channels == 1:
        return interleaved
    return array("h", (sum(interleaved[i:i + channels]) // channels
                       for i in range(0, len(interleaved) - channels + 1, channels)))


def resample(audio: Audio, rate: int = TELEPHONE_RATE) -> Audio:
    """Linear-interpolation resampling; when going down, each output sample first averages the
    input samples it spans, a box filter that keeps speech intelligible without a DSP library."""
    source, in_rate = audio.samples, audio.rate
    if in_rate == rate or not source:
        return Audio(array("h", source), rate)
    out_len = round(len(source) * rate / in_rate)
    step = in_rate / rate
    if step > 1:
        width = int(step)
        prefix = [0]
        for s in source:
            prefix.append(prefix[-1] + s)
        smoothed = [
            (prefix[min(len(source), i + width)] - prefix[i]) / (min(len(source), i + width) - i)
            for i in range(len(source))
        ]
    else:
        smoothed = list(source)
    last = len(smoothed) - 1
    out = array("h")
    for n in range(out_len):
        pos = n * step
        i = int(pos)
        frac = pos - i
        a = smoothed[min(i, last)]
        b = smoothed[min(i + 1, last)]
        out.append(max(-32768, min(32767, round(a + (b - a) * frac))))
    return Audio(out, rate)


def wav_to_ulaw(path: Path) -> bytes:
    """A WAV file as 8 kHz µ-law bytes, ready to be cut into Twilio frames."""
    return ulaw_encode(resample(read_wav(path), TELEPHONE_RATE).samples)


def frames(ulaw: bytes) -> list[bytes]:
    """160-byte frames; the last one is padded with silence as a phone line would be."""
    out = [ulaw[i:i + FRAME_BYTES] for i in range(0, len(ulaw), FRAME_BYTES)]
    if out and len(out[-1]) < FRAME_BYTES:
        out[-1] = out[-1] + bytes([ULAW_SILENCE]) * (FRAME_BYTES - len(out[-1]))
    return out


def write_wav(path: Path, audio: Audio) -> None:
    """16-bit PCM WAV, the format every player opens."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(audio.rate)
        out.writeframes(_little_endian(array("h", audio.samples)).tobytes())


def write_ulaw_as_wav(path: Path, ulaw: bytes) -> None:
    write_wav(path, Audio(ulaw_decode(ulaw), TELEPHONE_RATE))


def sample_caller_wav() -> Path:
    """The bundled few seconds of speech `supactl call` plays when no file is given."""
    return Path(__file__).resolve().parent / "assets" / "sample_caller.wav"
