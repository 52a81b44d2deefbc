"""A faithful Twilio for one inbound call: the signed voice webhook, the TwiML, the Media Stream
(signed upgrade, `connected`, `start`, 20 ms µ-law `media` in real time, `mark` echoes once the
audio before them has played, `clear`, `dtmf`, `stop`) and the `<Connect action>` that asks for
the next TwiML when a stream ends, so handoffs to a fresh stream are followed as Twilio does.

Twilio message shapes: https://www.twilio.com/docs/voice/media-streams/websocket-messages
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import statistics
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlencode

from supactl.errors import SupactlError
from supactl.simulator import audio
from supactl.simulator.call_script import Caller, Hearing, HangUp, Step, default_script
from supactl.simulator.twiml import Recording, StreamConnect, Twiml, parse_twiml
from supactl.twilio_signature import sign

API_VERSION = "2010-04-01"
MAX_STREAMS_PER_CALL = 50  # a loop of handoffs is a bug, not a long call
FRAME_SECONDS = audio.FRAME_MS / 1000
# Twilio waits 15 s for a webhook's TwiML before it gives up on the call.
TWIML_TIMEOUT_S = 15


class CallFailed(SupactlError):
    """The function did not behave as Twilio needs it to."""


def new_sid(prefix: str) -> str:
    """A Twilio SID: two letters and 32 hex digits."""
    return prefix + secrets.token_hex(16)


@dataclass
class CallOptions:
    function_url: str
    auth_token: str
    from_number: str = "+15005550006"
    to_number: str = "+15005550001"
    account_sid: str = "AC" + "0" * 32
    call_sid: str = field(default_factory=lambda: new_sid("CA"))
    record_to: Path | None = None
    log: Callable[[str], None] | None = None
    # What the person a transfer dials does: one of DIAL_OUTCOMES (Twilio's DialCallStatus).
    transfer_outcome: str = "completed"
    # An outbound call (Twilio's Calls API placed it): Direction outbound-api, From the tenant's
    # number, function_url the call's Url as created; answered_by when MachineDetection was asked.
    direction: str = "inbound"
    answered_by: str | None = None


@dataclass
class Handoff:
    stream: int  # the stream number that began (2 = first handoff)
    gap_ms: float | None  # last assistant audio played on the old stream -> first frame accepted


@dataclass
class CallReport:
    call_sid: str
    streams: int = 0
    frames_sent: int = 0
    frames_received: int = 0
    marks_received: int = 0
    marks_echoed: int = 0
    clears: int = 0
    dtmf_sent: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    handoffs: list[Handoff] = field(default_factory=list)
    says: list[str] = field(default_factory=list)
    recordings: list[Recording] = field(default_factory=list)  # <Start><Recording>s the call was given
    ended_by: str = ""  # "caller" | "function" | "transfer" (the call went on with the dialed person)
    transfers: list[dict[str, Any]] = field(default_factory=list)  # to, caller_id, outcome
    protocol_errors: list[str] = field(default_factory=list)
    heard_ms: int = 0  # assistant audio actually played to the caller
    transcript: list[dict[str, Any]] | None = None

    @property
    def latency_p50_ms(self) -> float | None:
        return statistics.median(self.latencies_ms) if self.latencies_ms else None

    @property
    def latency_max_ms(self) -> float | None:
        return max(self.latencies_ms) if self.latencies_ms else None

    def as_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {**asdict(self), "latency_p50_ms": self.latency_p50_ms, "latency_max_ms": self.latency_max_ms}


DIAL_OUTCOMES = ("completed", "busy", "no-answer", "failed")


def dial_status_params(outcome: str) -> dict[str, str]:
    """What Twilio adds to the <Dial action> request when the dialed leg ends."""
    return {"DialCallStatus": outcome, "DialCallSid": new_sid("CA"),
            "DialCallDuration": "12" if outcome == "completed" else "0"}


def twilio_call_params(options: CallOptions, status: str) -> dict[str, str]:
    """The standard parameters Twilio posts to a voice URL for the call (inbound unless the options
    say outbound-api), with AnsweredBy when machine detection answered."""
    params = {
        "AccountSid": options.account_sid, "ApiVersion": API_VERSION, "CallSid": options.call_sid,
        "CallStatus": status, "Called": options.to_number, "Caller": options.from_number,
        "Direction": options.direction, "From": options.from_number, "To": options.to_number,
    }
    if options.answered_by is not None:
        params["AnsweredBy"] = options.answered_by
    return params


class PlayoutQueue:
    """Audio the function sent, as the phone plays it: 160 bytes per 20 ms, marks in between."""

    def __init__(self) -> None:
        self.entries: deque[bytearray | str] = deque()  # audio chunks and mark names

    @property
    def queued_bytes(self) -> int:
        return sum(len(e) for e in self.entries if not isinstance(e, str))

    def add_audio(self, data: bytes) -> None:
        if self.entries and not isinstance(self.entries[-1], str):
            self.entries[-1] += data
        else:
            self.entries.append(bytearray(data))

    def add_mark(self, name: str) -> None:
        self.entries.append(name)

    def play(self, nbytes: int = audio.FRAME_BYTES) -> tuple[bytes, list[str]]:
        """Play up to one frame; return the audio played and the marks it reached."""
        played = bytearray()
        marks: list[str] = []
        while self.entries:
            head = self.entries[0]
            if isinstance(head, str):
                marks.append(head)
                self.entries.popleft()
                continue
            if len(played) >= nbytes:
                break
            take = head[: nbytes - len(played)]
            played += take
            del head[: len(take)]
            if not head:
                self.entries.popleft()
        return bytes(played), marks

    def clear(self) -> list[str]:
        """Twilio's `clear`: drop the audio, hand back every pending mark at once."""
        marks = [e for e in self.entries if isinstance(e, str)]
        self.entries.clear()
        return marks


class StreamLeg:
    """One `<Stream>` WebSocket of the call."""

    def __init__(self, options: CallOptions, connect: StreamConnect, caller: Caller,
                 report: CallReport, heard: bytearray, clock: Callable[[], float]) -> None:
        self.options, self.connect, self.caller, self.report = options, connect, caller, report
        self.heard, self.clock = heard, clock
        self.stream_sid = new_sid("MZ")
        self.queue = PlayoutQueue()
        self.sequence = 0
        self.chunk = 0
        self.last_audio_at: float | None = None
        self.last_played_at: float | None = None
        self.first_frame_at: float | None = None
        self.speech_ended_at: float | None = None
        self.closed_by_function = False
        self.hung_up = False

    def _log(self, line: str) -> None:
        if self.options.log:
            self.options.log(line)

    def _frame(self, event: str, **body: Any) -> str:
        self.sequence += 1
        return json.dumps({"event": event, "sequenceNumber": str(self.sequence),
                           "streamSid": self.stream_sid, **body})

    async def run(self) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidStatus

        # Twilio signs the upgrade over the URL exactly as written in <Stream url>, no params.
        headers = {"X-Twilio-Signature": sign(self.options.auth_token, self.connect.url, {}),
                   "User-Agent": "Twilio.TmeWs/1.0"}
        try:
            ws = await connect(self.connect.url, additional_headers=headers, open_timeout=10,
                               ping_interval=None, max_size=2**22)
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise CallFailed(f"the function refused the media stream upgrade: HTTP {status}",
                             hint="403 means the stream signature did not verify: the auth token "
                                  "differs from the function's TWILIO_AUTH_TOKEN, or PUBLIC_URL is wrong"
                             if status == 403 else None) from None
        except OSError as exc:
            raise CallFailed(f"cannot open the media stream {self.connect.url}: {exc}") from None
        async with ws:
            await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
            await ws.send(self._frame("start", start={
                "accountSid": self.options.account_sid, "streamSid": self.stream_sid,
                "callSid": self.options.call_sid, "tracks": ["inbound"],
                "customParameters": dict(self.connect.parameters),
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            }))
            receiver = asyncio.ensure_future(self._receive(ws))
            try:
                await self._tick_loop(ws, receiver)
            finally:
                receiver.cancel()

    async def _tick_loop(self, ws: Any, receiver: asyncio.Future) -> None:
        from websockets.exceptions import ConnectionClosed

        started = self.clock()
        tick = 0
        while not receiver.done():
            now = self.clock()
            await self._play_one_frame(ws, now)
            move = self.caller.next_move(Hearing(now, self.queue.queued_bytes // 8, self.last_audio_at))
            try:
                if move.hang_up is not None:
                    await self._hang_up(ws, move.hang_up)
                    return
                for digit in move.digits:
                    await ws.send(self._frame("dtmf", dtmf={"track": "inbound_track", "digit": digit}))
                    self.report.dtmf_sent += 1
                self.chunk += 1
                payload = move.frame or bytes([audio.ULAW_SILENCE]) * audio.FRAME_BYTES
                await ws.send(self._frame("media", media={
                    "track": "inbound", "chunk": str(self.chunk),
                    "timestamp": str(round((now - started) * 1000)),
                    "payload": base64.b64encode(payload).decode()}))
            except ConnectionClosed:
                break
            self.report.frames_sent += 1
            if self.first_frame_at is None:
                self.first_frame_at = now
            if move.speech_ended:
                self.speech_ended_at = self.clock()
            tick += 1
            # Absolute schedule, so send jitter does not accumulate into drift.
            await asyncio.sleep(max(0.0, started + tick * FRAME_SECONDS - self.clock()))
        self.closed_by_function = True

    async def _play_one_frame(self, ws: Any, now: float) -> None:
        played, marks = self.queue.play()
        self.heard += played.ljust(audio.FRAME_BYTES, bytes([audio.ULAW_SILENCE]))
        self.report.heard_ms += len(played) // 8
        if played:
            self.last_played_at = self.last_audio_at = now
        for name in marks:
            await self._echo_mark(ws, name)

    async def _echo_mark(self, ws: Any, name: str) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            await ws.send(self._frame("mark", mark={"name": name}))
            self.report.marks_echoed += 1
        except ConnectionClosed:
            pass

    async def _hang_up(self, ws: Any, step: HangUp) -> None:
        self.hung_up = True
        if step.send_stop:
            await ws.send(self._frame("stop", stop={"accountSid": self.options.account_sid,
                                                     "callSid": self.options.call_sid}))
        await ws.close()

    async def _receive(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            async for message in ws:
                await self._on_message(ws, message)
        except ConnectionClosed:
            pass

    async def _on_message(self, ws: Any, message: Any) -> None:
        try:
            event = json.loads(message)
            kind = event["event"]
        except (ValueError, TypeError, KeyError):
            self.report.protocol_errors.append("a frame from the function is not Twilio JSON")
            return
        if event.get("streamSid") != self.stream_sid:
            self.report.protocol_errors.append(f"{kind} with streamSid {event.get('streamSid')!r}")
            return
        if kind == "media":
            try:
                payload = base64.b64decode(event["media"]["payload"], validate=True)
            except (KeyError, TypeError, ValueError):
                self.report.protocol_errors.append("media without a base64 payload")
                return
            now = self.clock()
            if self.speech_ended_at is not None:
                self.report.latencies_ms.append((now - self.speech_ended_at) * 1000)
                self._log(f"first reply audio {self.report.latencies_ms[-1]:.0f} ms after the caller stopped")
                self.speech_ended_at = None
            self.report.frames_received += 1
            self.last_audio_at = now
            self.queue.add_audio(payload)
        elif kind == "mark":
            name = (event.get("mark") or {}).get("name")
            if not isinstance(name, str):
                self.report.protocol_errors.append("mark without a name")
                return
            self.report.marks_received += 1
            self.queue.add_mark(name)
        elif kind == "clear":
            self.report.clears += 1
            for name in self.queue.clear():
                await self._echo_mark(ws, name)
        else:
            self.report.protocol_errors.append(f"unknown event {kind!r} from the function")


async def place_call_async(options: CallOptions, script: list[Step] | None = None,
                           http: Any | None = None) -> CallReport:
    """Run one call from the webhook to the hang-up and report what happened."""
    import httpx

    caller = Caller(script if script is not None else default_script())
    report = CallReport(options.call_sid)
    heard = bytearray()
    clock = time.monotonic
    own_client = http is None
    http = http or httpx.AsyncClient(timeout=TWIML_TIMEOUT_S)
    try:
        twiml = await _request_twiml(http, options, options.function_url, "POST", "ringing")
        last_audio: float | None = None
        while True:
            report.says += twiml.says
            report.recordings += twiml.recordings
            if twiml.dial is not None:
                # A transfer: the simulated person answers (or not) as the options say.
                outcome = options.transfer_outcome
                report.transfers.append({"to": twiml.dial.number, "caller_id": twiml.dial.caller_id,
                                         "outcome": outcome})
                _log(options, f"transfer: dialing {twiml.dial.number} ({outcome})")
                if twiml.dial.action is None:
                    report.ended_by = "transfer"
                    break
                twiml = await _request_twiml(http, options, twiml.dial.action, twiml.dial.method, "in-progress",
                                             extra=dial_status_params(outcome))
                if twiml.connect is None and outcome == "completed":
                    report.ended_by = "transfer"
                    break
                continue
            if twiml.connect is None:
                report.ended_by = "function"
                break
            if report.streams >= MAX_STREAMS_PER_CALL:
                raise CallFailed(f"the function started {MAX_STREAMS_PER_CALL} streams for one call")
            report.streams += 1
            leg = StreamLeg(options, twiml.connect, caller, report, heard, clock)
            # The caller's ear spans streams: a WaitForReply counts its quiet from the old stream's audio.
            leg.last_audio_at = last_audio
            _log(options, f"stream {report.streams} opening {twiml.connect.url}")
            await leg.run()
            if report.streams > 1:
                gap = (leg.first_frame_at - last_audio) * 1000 if last_audio and leg.first_frame_at else None
                report.handoffs.append(Handoff(report.streams, gap))
                _log(options, f"handoff to stream {report.streams}: gap "
                              f"{'n/a' if gap is None else f'{gap:.0f} ms'}")
            last_audio = leg.last_played_at or last_audio
            if leg.hung_up or caller.done:
                report.ended_by = "caller"
                break
            action = twiml.connect.action
            if action is None:
                report.ended_by = "function"
                break
            _log(options, f"stream {report.streams} closed by the function; requesting {action}")
            twiml = await _request_twiml(http, options, action, twiml.connect.method, "in-progress")
    finally:
        if own_client:
            await http.aclose()
        if options.record_to is not None:
            audio.write_ulaw_as_wav(options.record_to, bytes(heard))
    return report


def place_call(options: CallOptions, script: list[Step] | None = None) -> CallReport:
    return asyncio.run(place_call_async(options, script))


def _log(options: CallOptions, line: str) -> None:
    if options.log:
        options.log(line)


async def _request_twiml(http: Any, options: CallOptions, url: str, method: str, status: str,
                        extra: dict[str, str] | None = None) -> Twiml:
    import httpx

    params = {**twilio_call_params(options, status), **(extra or {})}
    headers = {"User-Agent": "TwilioProxy/1.1", "I-Twilio-Idempotency-Token": secrets.token_hex(16)}
    try:
        if method == "GET":
            sep = "&" if "?" in url else "?"
            full = url + sep + urlencode(params)
            headers["X-Twilio-Signature"] = sign(options.auth_token, full, {})
            response = await http.get(full, headers=headers)
        else:
            headers["X-Twilio-Signature"] = sign(options.auth_token, url, params)
            response = await http.post(url, data=params, headers=headers)
    except httpx.TimeoutException:
        # httpx's timeout errors often carry no text of their own: say what happened.
        raise CallFailed(f"the function at {url} did not answer within {TWIML_TIMEOUT_S:g} s",
                         hint="it accepted the connection but is stuck: see its log (`supactl dev` prints it)") from None
    except httpx.HTTPError as exc:
        raise CallFailed(f"cannot reach the function at {url}: {exc or type(exc).__name__}",
                         hint="is `supactl dev` running, or is the URL of the deployed function right?") from None
    if response.status_code != 200:
        hint = {
            400: "the function saw no X-Twilio-Signature header",
            403: "the signature did not verify: pass the auth token the function has as TWILIO_AUTH_TOKEN "
                 "(--auth-token or TWILIO_AUTH_TOKEN), and check PUBLIC_URL matches the URL called",
            401: "the function requires a JWT: deploy it with JWT verification off (supactl up does)",
            404: "no function at this URL",
        }.get(response.status_code)
        raise CallFailed(f"the function answered HTTP {response.status_code} to the voice webhook {url}",
                         hint=hint)
    _log(options, f"TwiML from {url}: {_one_line(response.text)}")
    return parse_twiml(response.text, url)


TWIML_LOG_CHARS = 2000  # a <Connect><Stream> answer is ~300 characters; past this it is not TwiML we sent


def _one_line(text: str) -> str:
    """TwiML for a log line: whole (a cut mid-attribute reads as a broken answer), on one line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= TWIML_LOG_CHARS else flat[:TWIML_LOG_CHARS] + f"… ({len(flat)} characters)"
