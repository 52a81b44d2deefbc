"""What the simulated caller does, one 20 ms tick at a time.

A script is a list of steps: play a WAV (or any µ-law), stay silent, wait for the assistant's
reply, press keys, hang up. The stream leg asks the caller for its next move every tick, so the
same script carries on across a handoff to a new stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from supactl.simulator import audio

# Frame level (16-bit RMS) above which a frame counts as speech: line noise sits well below it.
SPEECH_RMS = 300


@dataclass
class Play:
    """Speak: stream this audio, 20 ms per frame, in real time."""

    ulaw: bytes
    label: str = "speech"

    @property
    def speech_end(self) -> int:
        """Byte offset where the speech in this audio ends (trailing silence is not speech), so
        reply latency counts from the caller's last word, not from the end of the file."""
        voiced = [i for i, frame in enumerate(audio.frames(self.ulaw)) if audio.ulaw_rms(frame) >= SPEECH_RMS]
        return min(len(self.ulaw), (voiced[-1] + 1) * audio.FRAME_BYTES) if voiced else len(self.ulaw)

    @classmethod
    def wav(cls, path: Path | None = None) -> "Play":
        path = path or audio.sample_caller_wav()
        return cls(audio.wav_to_ulaw(path), Path(path).name)


@dataclass
class Silence:
    seconds: float


@dataclass
class WaitForReply:
    """Wait for the assistant to start speaking (at most `start_within` s: then move on), then until
    it has gone quiet for `quiet` s (nothing queued, nothing arriving), `max_seconds` in all."""

    start_within: float = 15.0
    quiet: float = 0.8
    max_seconds: float = 60.0


@dataclass
class WaitForAudio:
    """Wait until assistant audio starts playing (then barge in with the next Play)."""

    timeout: float = 10.0


@dataclass
class Dtmf:
    digits: str


@dataclass
class HangUp:
    send_stop: bool = True  # False: the socket just closes, as when the caller's line drops


Step = Play | Silence | WaitForReply | WaitForAudio | Dtmf | HangUp


def default_script(wav: Path | None = None) -> list[Step]:
    """Hear any greeting, say the sample, hear the reply, hang up."""
    return [WaitForReply(start_within=2.0), Play.wav(wav), WaitForReply(), HangUp()]


def barge_in_script(wav: Path | None = None) -> list[Step]:
    """Speak, let the reply start, interrupt it with the same sentence, hear the second reply."""
    return [WaitForReply(start_within=2.0), Play.wav(wav), WaitForAudio(), Silence(0.6), Play.wav(wav),
            WaitForReply(), HangUp()]


@dataclass
class Hearing:
    """What the caller's ear knows at this tick."""

    now: float
    queued_ms: int  # assistant audio received but not yet played
    last_audio_at: float | None  # when assistant audio last arrived or played


@dataclass
class Move:
    frame: bytes | None = None  # None: silence
    digits: str = ""
    hang_up: HangUp | None = None
    speech_ended: bool = False  # the last frame of a Play went out with this move


@dataclass
class Caller:
    steps: list[Step]
    index: int = 0
    offset: int = 0
    step_started: float | None = None
    heard_since_step: bool = False
    speech_end: int = 0
    done: bool = False
    log: list[str] = field(default_factory=list)

    def next_move(self, ear: Hearing) -> Move:
        while self.index < len(self.steps):
            step = self.steps[self.index]
            if self.step_started is None:
                self.step_started, self.offset, self.heard_since_step = ear.now, 0, False
            move = self._run(step, ear)
            if move is not None:
                return move
            self._advance()
        self.done = True
        return Move(hang_up=HangUp())

    def _advance(self) -> None:
        self.index += 1
        self.step_started = None

    def _run(self, step: Step, ear: Hearing) -> Move | None:
        elapsed = ear.now - (self.step_started or ear.now)
        if isinstance(step, Play):
            frame = step.ulaw[self.offset:self.offset + audio.FRAME_BYTES]
            if not frame:
                return None
            if self.offset == 0:
                self.speech_end = step.speech_end
            self.offset += audio.FRAME_BYTES
            padded = frame.ljust(audio.FRAME_BYTES, bytes([audio.ULAW_SILENCE]))
            ended = self.offset - audio.FRAME_BYTES < self.speech_end <= self.offset
            if self.offset >= len(step.ulaw):
                self._advance()
            return Move(frame=padded, speech_ended=ended)
        if isinstance(step, Silence):
            return Move() if elapsed < step.seconds else None
        if isinstance(step, WaitForAudio):
            if ear.queued_ms > 0 or elapsed >= step.timeout:
                return None
            return Move()
        if isinstance(step, WaitForReply):
            if ear.queued_ms > 0:
                self.heard_since_step = True
            if elapsed >= step.max_seconds:
                return None
            if not self.heard_since_step:
                return None if elapsed >= step.start_within else Move()
            quiet_for = ear.now - (ear.last_audio_at or ear.now)
            return None if ear.queued_ms == 0 and quiet_for >= step.quiet else Move()
        if isinstance(step, Dtmf):
            self._advance()
            return Move(digits=step.digits)
        if isinstance(step, HangUp):
            self.done = True
            return Move(hang_up=step)
        raise TypeError(f"unknown script step {step!r}")
