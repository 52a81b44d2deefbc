"""The loopback model behind the local Realtime peer: one GA session per connection.

It keeps the session configuration as `session.update`s set it, detects caller speech by frame
energy (server VAD), and answers each turn with the caller's own audio played back (or a chime
for a text prompt), with transcripts marked `[loopback]`, in 20 ms deltas paced in real time.
A reply is cancelled when the caller starts speaking over it, as OpenAI's server VAD does.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import json
import math
import re
import time
from array import array
from dataclasses import dataclass, field
from typing import Any, Protocol

from supactl.dev_stack.realtime_validation import RealtimeRefusal, check_client_event
from supactl.simulator import audio


class SessionHost(Protocol):
    """What a session needs from the server that accepted it (the RealtimePeer): its behaviour
    settings, unique ids and its log. A protocol, so this module does not import the server."""

    behaviour: PeerBehaviour

    def next_id(self, prefix: str) -> str: ...

    def log(self, line: str) -> None: ...


# GA session defaults as `session.created` reports them: 24 kHz PCM both ways, server VAD on,
# no input transcription until asked for.
_VAD_DEFAULTS = {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                 "silence_duration_ms": 500, "create_response": True, "interrupt_response": True}
MAX_REPLY_SECONDS = 6.0
DELTA_MS = 20
# The loopback's deterministic tool trigger: the bridge tells the model about a keypad digit with
# this sentence (bridge.ts), and digit N calls the N-th tool of the session (1-9), so
# `supactl call --dtmf 2` runs the tenant's second tool with no OpenAI key.
_DIGIT_TEXT = re.compile(r"The caller pressed ([1-9]) on the phone keypad")


def _default_session(model: str) -> dict[str, Any]:
    return {
        "type": "realtime", "object": "realtime.session", "model": model,
        "output_modalities": ["audio"], "instructions": "", "tools": [], "tool_choice": "auto",
        "max_output_tokens": "inf",
        "audio": {
            "input": {"format": {"type": "audio/pcm", "rate": 24000}, "transcription": None,
                      "noise_reduction": None, "turn_detection": dict(_VAD_DEFAULTS)},
            "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "alloy", "speed": 1.0},
        },
    }


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict) and key != "format":
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


# --- audio formats -----------------------------------------------------------------------------

def _bytes_per_ms(fmt: dict[str, Any]) -> int:
    return 48 if fmt.get("type", "audio/pcm") == "audio/pcm" else 8  # 24 kHz 16-bit vs 8 kHz G.711


def _to_linear(data: bytes, fmt: dict[str, Any]) -> audio.Audio:
    kind = fmt.get("type", "audio/pcm")
    if kind == "audio/pcmu":
        return audio.Audio(audio.ulaw_decode(data), 8000)
    if kind == "audio/pcma":
        return audio.Audio(audio.alaw_decode(data), 8000)
    samples = array("h")
    samples.frombytes(data[: len(data) - len(data) % 2])
    return audio.Audio(samples, 24000)


def _from_linear(sound: audio.Audio, fmt: dict[str, Any]) -> bytes:
    if fmt.get("type", "audio/pcm") == "audio/pcm":
        return audio.resample(sound, 24000).samples.tobytes()
    # The loopback never outputs A-law: a bridge that asks for it gets µ-law, and hears noise.
    return audio.ulaw_encode(audio.resample(sound, 8000).samples)


def _rms(samples: array) -> float:
    return (sum(s * s for s in samples) / len(samples)) ** 0.5 if samples else 0.0


def _chime(seconds: float = 0.8) -> audio.Audio:
    """What the loopback says when there is no caller audio to play back (greeting, DTMF)."""
    rate, out = 8000, array("h")
    total = int(rate * seconds)
    for n in range(total):
        freq = 523.25 if n < total // 2 else 659.25
        fade = min(1.0, n / 160, (total - n) / 160)
        out.append(int(6000 * fade * math.sin(2 * math.pi * freq * n / rate)))
    return audio.Audio(out, rate)


# --- recording and behaviour -------------------------------------------------------------------

@dataclass
class PeerBehaviour:
    """How the peer misbehaves or paces itself, for tests and for `supactl dev`."""

    api_keys: frozenset[str] | None = None  # None: any non-empty key is valid
    refuse_all_keys: bool = False
    drop_after_appends: int | None = None  # abort the TCP connection after this many appends
    reply_delay_s: float = 0.0
    speed: float = 1.0  # 1.0 streams reply audio in real time; 2.0 twice as fast
    speech_rms: float | None = None  # energy threshold; None derives it from turn_detection.threshold


@dataclass
class PeerSession:
    """One Realtime connection as the server saw it."""

    number: int
    model: str
    auth: str  # "subprotocol" | "header" | "none"
    subprotocols: list[str]
    events: list[dict[str, Any]] = field(default_factory=list)  # every client event, in order
    sent: list[dict[str, Any]] = field(default_factory=list)  # every server event except audio deltas
    refusals: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None
    closed: bool = False
    config: dict[str, Any] = field(default_factory=dict)

    def client_events(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == event_type]

    def server_events(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.sent if e.get("type") == event_type]

    @property
    def created_items(self) -> list[dict[str, Any]]:
        """Items the client created (restored history, greeting prompts, DTMF)."""
        return [e["item"] for e in self.client_events("conversation.item.create")]


@dataclass
class _Item:
    item_id: str
    role: str
    text: str = ""
    input_audio: bytearray = field(default_factory=bytearray)  # user speech, input format
    output_bytes: int = 0  # assistant audio sent, output format
    output_format: dict[str, Any] = field(default_factory=dict)

    @property
    def output_ms(self) -> int:
        return self.output_bytes // _bytes_per_ms(self.output_format) if self.output_format else 0


class LoopbackSession:
    """The per-connection protocol and model."""

    def __init__(self, peer: SessionHost, ws: Any, record: PeerSession) -> None:
        self.peer, self.ws, self.record = peer, ws, record
        self.config = record.config = _default_session(record.model)
        self.items: dict[str, _Item] = {}
        self.order: list[str] = []
        self.input_ms = 0
        self.pending_input = bytearray()
        self.prefix = bytearray()  # recent input kept for prefix_padding_ms
        self.speech_item: _Item | None = None
        self.voiced_windows = 0
        self.silent_ms = 0
        self.response_task: asyncio.Task | None = None
        self.response_cancel: str | None = None
        self.pending_transcripts: list[_Item] = []
        self.appends = 0
        self.dropped = False
        self.tool_call_ids: set[str] = set()  # function_call items in the conversation

    # sending ---------------------------------------------------------------------------------
    async def send(self, event: dict[str, Any]) -> None:
        event.setdefault("event_id", self.peer.next_id("event"))
        if event["type"] != "response.output_audio.delta":
            self.record.sent.append(event)
        await self.ws.send(json.dumps(event))

    async def refuse(self, refusal: RealtimeRefusal, event_id: str | None = None) -> None:
        event = refusal.event(event_id)
        self.record.refusals.append(event["error"])
        self.peer.log(f"session {self.record.number}: error {refusal.code}: {refusal.message}")
        await self.send(event)
        if refusal.close_code is not None:
            self.record.close_code = refusal.close_code
            await self.ws.close(refusal.close_code, refusal.code)

    # dispatch --------------------------------------------------------------------------------
    async def run(self) -> None:
        await self.send({"type": "session.created", "session": copy.deepcopy(self.config)})
        async for message in self.ws:
            if self.dropped:
                return  # frames already buffered when the connection was cut were never received
            if isinstance(message, bytes):
                await self.refuse(RealtimeRefusal("invalid_json", "Binary frames are not accepted."))
                continue
            try:
                event = json.loads(message)
            except ValueError:
                await self.refuse(RealtimeRefusal("invalid_json", "The server could not parse the JSON."))
                continue
            self.record.events.append(event)
            event_id = event.get("event_id") if isinstance(event, dict) else None
            try:
                check_client_event(event)
                await self.handle(event)
            except RealtimeRefusal as refusal:
                await self.refuse(refusal, event_id)
                if refusal.close_code is not None:
                    return

    async def handle(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "input_audio_buffer.append":
            await self.on_append(event)
        elif kind == "session.update":
            _merge(self.config, event["session"])
            self.peer.log(f"session {self.record.number}: updated "
                          f"(in {self.input_format['type']}, out {self.output_format['type']})")
            await self.send({"type": "session.updated", "session": copy.deepcopy(self.config)})
        elif kind == "conversation.item.create":
            await self.on_item_create(event)
        elif kind == "response.create":
            await self.on_response_create()
        elif kind == "response.cancel":
            if not self.response_active:
                raise RealtimeRefusal("response_cancel_not_active",
                                      "Cancellation failed: no active response found.")
            self.cancel_response("client_cancelled")
        elif kind == "conversation.item.truncate":
            await self.on_truncate(event)
        elif kind == "conversation.item.delete":
            self.item(event["item_id"])
            self.order.remove(event["item_id"])
            del self.items[event["item_id"]]
            await self.send({"type": "conversation.item.deleted", "item_id": event["item_id"]})
        elif kind == "conversation.item.retrieve":
            item = self.item(event["item_id"])
            await self.send({"type": "conversation.item.retrieved", "item": self.item_json(item)})
        elif kind == "input_audio_buffer.clear":
            self.speech_item, self.voiced_windows, self.silent_ms = None, 0, 0
            await self.send({"type": "input_audio_buffer.cleared"})
        elif kind == "input_audio_buffer.commit":
            if self.speech_item is None or not self.speech_item.input_audio:
                raise RealtimeRefusal("input_audio_buffer_commit_empty",
                                      "Error committing input audio buffer: buffer is empty.")
            await self.end_speech(emit_stopped=False)
        # output_audio_buffer.clear is WebRTC-only and a no-op over WebSocket.

    @property
    def input_format(self) -> dict[str, Any]:
        return self.config["audio"]["input"]["format"]

    @property
    def output_format(self) -> dict[str, Any]:
        return self.config["audio"]["output"]["format"]

    @property
    def turn_detection(self) -> dict[str, Any] | None:
        detection = self.config["audio"]["input"].get("turn_detection")
        return {**_VAD_DEFAULTS, **detection} if detection else None

    @property
    def response_active(self) -> bool:
        return self.response_task is not None and not self.response_task.done()

    def item(self, item_id: str) -> _Item:
        found = self.items.get(item_id)
        if found is None:
            raise RealtimeRefusal("item_not_found", f"Item with item_id '{item_id}' not found.", "item_id")
        return found

    def add_item(self, item: _Item) -> None:
        self.items[item.item_id] = item
        self.order.append(item.item_id)

    def item_json(self, item: _Item) -> dict[str, Any]:
        kind = "input_text" if item.role == "user" else "output_audio"
        part = {"type": kind, "transcript" if kind == "output_audio" else "text": item.text}
        return {"id": item.item_id, "type": "message", "object": "realtime.item", "role": item.role,
                "status": "completed", "content": [part]}

    # caller audio and VAD --------------------------------------------------------------------
    async def on_append(self, event: dict[str, Any]) -> None:
        try:
            chunk = base64.b64decode(event["audio"], validate=True)
        except (binascii.Error, ValueError):
            raise RealtimeRefusal("invalid_value", "Invalid 'audio': not valid base64.", "audio") from None
        self.appends += 1
        if self.peer.behaviour.drop_after_appends is not None \
                and self.appends >= self.peer.behaviour.drop_after_appends:
            self.peer.log(f"session {self.record.number}: dropping the connection (configured)")
            self.dropped = True
            self.ws.transport.abort()
            return
        self.pending_input += chunk
        window = _bytes_per_ms(self.input_format) * DELTA_MS
        while len(self.pending_input) >= window:
            frame = bytes(self.pending_input[:window])
            del self.pending_input[:window]
            self.input_ms += DELTA_MS
            await self.on_window(frame)

    async def on_window(self, frame: bytes) -> None:
        detection = self.turn_detection
        if detection is None and self.speech_item is None:
            # Turn detection off: the buffer fills until the client commits it.
            self.speech_item = _Item(self.peer.next_id("item"), "user")
        if self.speech_item is not None:
            self.speech_item.input_audio += frame
        else:
            self.prefix += frame
            padding: Any = (detection or _VAD_DEFAULTS)["prefix_padding_ms"]
            keep = _bytes_per_ms(self.input_format) * int(padding)
            del self.prefix[: max(0, len(self.prefix) - keep)]
        if detection is None:
            return
        threshold = self.peer.behaviour.speech_rms or 200 + 800 * float(detection["threshold"])
        voiced = _rms(_to_linear(frame, self.input_format).samples) >= threshold
        if self.speech_item is None:
            self.voiced_windows = self.voiced_windows + 1 if voiced else 0
            if self.voiced_windows >= 2:  # 40 ms of energy, so a click is not a turn
                await self.start_speech()
            return
        self.silent_ms = 0 if voiced else self.silent_ms + DELTA_MS
        if self.silent_ms >= int(detection["silence_duration_ms"]):
            await self.end_speech(emit_stopped=True)

    async def start_speech(self) -> None:
        item = _Item(self.peer.next_id("item"), "user", input_audio=bytearray(self.prefix))
        self.prefix.clear()
        self.speech_item, self.silent_ms = item, 0
        start_ms = self.input_ms - len(item.input_audio) // _bytes_per_ms(self.input_format)
        self.peer.log(f"session {self.record.number}: caller speech started at {start_ms} ms")
        await self.send({"type": "input_audio_buffer.speech_started", "item_id": item.item_id,
                         "audio_start_ms": max(0, start_ms)})
        if self.response_active and (self.turn_detection or {}).get("interrupt_response", True):
            self.cancel_response("turn_detected")

    async def end_speech(self, *, emit_stopped: bool) -> None:
        item, self.speech_item, self.voiced_windows = self.speech_item, None, 0
        assert item is not None
        if emit_stopped:
            await self.send({"type": "input_audio_buffer.speech_stopped", "item_id": item.item_id,
                             "audio_end_ms": self.input_ms})
        seconds = len(item.input_audio) / _bytes_per_ms(self.input_format) / 1000
        item.text = f"[loopback] caller spoke {seconds:.1f} s"
        previous = self.order[-1] if self.order else None
        self.add_item(item)
        await self.send({"type": "input_audio_buffer.committed", "item_id": item.item_id,
                         "previous_item_id": previous})
        await self.send({"type": "conversation.item.added", "previous_item_id": previous,
                         "item": {**self.item_json(item), "status": "completed"}})
        if self.config["audio"]["input"].get("transcription"):
            self.pending_transcripts.append(item)
        detection = self.turn_detection
        # Without turn detection the client asks for the reply itself (response.create).
        if detection and detection.get("create_response", True) and not self.response_active:
            self.start_response()
        else:
            await self.flush_transcripts()

    async def flush_transcripts(self) -> None:
        # The real service often delivers the caller's transcript after the reply has begun.
        while self.pending_transcripts:
            item = self.pending_transcripts.pop(0)
            await self.send({"type": "conversation.item.input_audio_transcription.completed",
                             "item_id": item.item_id, "content_index": 0, "transcript": item.text,
                             "usage": {"type": "duration", "seconds": round(
                                 len(item.input_audio) / _bytes_per_ms(self.input_format) / 1000, 1)}})

    # conversation ------------------------------------------------------------------------------
    async def on_item_create(self, event: dict[str, Any]) -> None:
        raw = event["item"]
        item = _Item(raw.get("id") or self.peer.next_id("item"), raw.get("role", raw.get("type", "")))
        if item.item_id in self.items:
            raise RealtimeRefusal("item_already_exists", f"Item '{item.item_id}' already exists.", "item.id")
        if raw.get("type") == "function_call_output":
            # The server checks that a function_call item with the same call_id exists.
            if raw.get("call_id") not in self.tool_call_ids:
                raise RealtimeRefusal("invalid_value", f"Tool call ID '{raw.get('call_id')}' not found in conversation.",
                                      "item.call_id")
            item.text = str(raw.get("output") or "")
        elif raw.get("type") == "function_call":
            # A restored conversation (after a handoff) carries its earlier tool calls.
            self.tool_call_ids.add(str(raw.get("call_id")))
            item.text = f"{raw.get('name')}({raw.get('arguments') or ''})"
        else:
            item.text = " ".join(str(part.get("text") or part.get("transcript") or "")
                                 for part in raw.get("content") or [] if isinstance(part, dict)).strip()
        previous = self.order[-1] if self.order else None
        self.add_item(item)
        self.peer.log(f"session {self.record.number}: item added ({item.role}): {item.text[:60]!r}")
        await self.send({"type": "conversation.item.added", "previous_item_id": previous,
                         "item": {**raw, "id": item.item_id, "status": "completed"}})
        await self.send({"type": "conversation.item.done", "previous_item_id": previous,
                         "item": {**raw, "id": item.item_id, "status": "completed"}})

    async def on_response_create(self) -> None:
        if self.response_active:
            raise RealtimeRefusal("conversation_already_has_active_response",
                                  "Conversation already has an active response in progress.")
        self.start_response()

    async def on_truncate(self, event: dict[str, Any]) -> None:
        item = self.item(event["item_id"])
        if item.role != "assistant":
            raise RealtimeRefusal("invalid_value", "Only assistant messages can be truncated.", "item_id")
        if event["content_index"] != 0:
            raise RealtimeRefusal("invalid_value", "Invalid 'content_index': the item has one content part.",
                                  "content_index")
        end_ms = event["audio_end_ms"]
        if end_ms < 0 or end_ms > item.output_ms:
            raise RealtimeRefusal(
                "invalid_value",
                f"Audio content of {item.output_ms}ms is already shorter than {end_ms}ms",
                "audio_end_ms",
            )
        self.peer.log(f"session {self.record.number}: truncated {item.item_id} at {end_ms} ms "
                      f"of {item.output_ms} ms")
        await self.send({"type": "conversation.item.truncated", "item_id": item.item_id,
                         "content_index": 0, "audio_end_ms": end_ms})

    # responses ---------------------------------------------------------------------------------
    def start_response(self) -> None:
        self.response_cancel = None
        self.response_task = asyncio.ensure_future(self._respond_until_closed())

    async def _respond_until_closed(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            await self.respond()
        except ConnectionClosed:
            pass  # the bridge hung up mid-reply

    def cancel_response(self, reason: str) -> None:
        self.response_cancel = reason

    def reply_for_last_item(self) -> tuple[audio.Audio, str]:
        last = self.items[self.order[-1]] if self.order else None
        if last is not None and last.role == "user" and last.input_audio:
            sound = _to_linear(bytes(last.input_audio), self.input_format)
            keep = int(sound.rate * MAX_REPLY_SECONDS)
            sound = audio.Audio(sound.samples[:keep], sound.rate)
            return sound, f"[loopback] playing back your {sound.seconds:.1f} s of audio"
        if last is not None and last.role == "function_call_output":
            return _chime(), f"[loopback] the tool answered: {last.text[:200]}"
        if last is not None and last.text:
            return _chime(), f"[loopback] reply to: {last.text[:200]}"
        return _chime(), "[loopback] hello from the local loopback model"

    def tool_asked_for(self) -> dict[str, Any] | None:
        """The tool a keypad digit asks for, when that digit is the newest item: a digit further back
        (a conversation restored after a handoff) has had its answer already."""
        last = self.items[self.order[-1]] if self.order else None
        digit = _DIGIT_TEXT.search(last.text) if last is not None and last.role == "user" else None
        tools = [t for t in self.config.get("tools") or [] if t.get("type") == "function"]
        return tools[int(digit.group(1)) - 1] if digit and int(digit.group(1)) <= len(tools) else None

    async def respond(self) -> None:
        tool = self.tool_asked_for()
        if tool is not None:
            await self.call_tool(tool)
            return
        response_id, item_id = self.peer.next_id("resp"), self.peer.next_id("item")
        sound, transcript = self.reply_for_last_item()
        output_format = dict(self.output_format)
        payload = _from_linear(sound, output_format)
        item = _Item(item_id, "assistant", text=transcript, output_format=output_format)
        previous = self.order[-1] if self.order else None
        self.add_item(item)
        base = {"response_id": response_id, "item_id": item_id, "output_index": 0, "content_index": 0}
        item_json = {"id": item_id, "type": "message", "object": "realtime.item", "role": "assistant",
                     "status": "in_progress", "content": []}
        await self.send({"type": "response.created", "response": {
            "id": response_id, "object": "realtime.response", "status": "in_progress", "output": []}})
        if self.peer.behaviour.reply_delay_s:
            await asyncio.sleep(self.peer.behaviour.reply_delay_s)
        await self.send({"type": "response.output_item.added", "response_id": response_id,
                         "output_index": 0, "item": item_json})
        await self.send({"type": "conversation.item.added", "previous_item_id": previous, "item": item_json})
        await self.send({"type": "response.content_part.added", **base,
                         "part": {"type": "audio", "transcript": ""}})
        chunk = _bytes_per_ms(output_format) * DELTA_MS
        interval = DELTA_MS / 1000 / max(self.peer.behaviour.speed, 0.01)
        started = time.monotonic()
        for index, offset in enumerate(range(0, len(payload), chunk)):
            if self.response_cancel:
                break
            delta = payload[offset:offset + chunk]
            await self.send({"type": "response.output_audio.delta", **base,
                             "delta": base64.b64encode(delta).decode()})
            item.output_bytes += len(delta)
            if index == 0:
                await self.send({"type": "response.output_audio_transcript.delta", **base, "delta": transcript})
                await self.flush_transcripts()
            await asyncio.sleep(max(0.0, started + (index + 1) * interval - time.monotonic()))
        await self.flush_transcripts()
        cancelled = self.response_cancel
        status = "cancelled" if cancelled else "completed"
        done_item = {**item_json, "status": "incomplete" if cancelled else "completed",
                     "content": [{"type": "output_audio", "transcript": transcript}]}
        await self.send({"type": "response.output_audio.done", **base})
        await self.send({"type": "response.output_audio_transcript.done", **base, "transcript": transcript})
        await self.send({"type": "response.content_part.done", **base,
                         "part": {"type": "audio", "transcript": transcript}})
        await self.send({"type": "response.output_item.done", "response_id": response_id,
                         "output_index": 0, "item": done_item})
        await self.send({"type": "conversation.item.done", "previous_item_id": previous, "item": done_item})
        output_tokens = math.ceil(item.output_ms / 50)
        input_tokens = 10 * len(self.order)
        await self.send({"type": "response.done", "response": {
            "id": response_id, "object": "realtime.response", "status": status,
            "status_details": {"type": "cancelled", "reason": cancelled} if cancelled else None,
            "output": [done_item],
            "usage": {"total_tokens": input_tokens + output_tokens, "input_tokens": input_tokens,
                      "output_tokens": output_tokens,
                      "input_token_details": {"text_tokens": input_tokens, "audio_tokens": 0, "cached_tokens": 0},
                      "output_token_details": {"text_tokens": 0, "audio_tokens": output_tokens}},
        }})
        self.peer.log(f"session {self.record.number}: reply {item.output_ms} ms {status}"
                      + (f" ({cancelled})" if cancelled else ""))

    async def call_tool(self, tool: dict[str, Any]) -> None:
        """A response whose only output is a function_call, as the GA server streams one."""
        response_id, item_id, call_id = self.peer.next_id("resp"), self.peer.next_id("item"), self.peer.next_id("call")
        arguments = json.dumps(_sample_arguments(tool.get("parameters") or {}))
        previous = self.order[-1] if self.order else None
        self.add_item(_Item(item_id, "function_call", text=f"{tool['name']}({arguments})"))
        self.tool_call_ids.add(call_id)
        item_json = {"id": item_id, "type": "function_call", "object": "realtime.item", "status": "in_progress",
                     "name": tool["name"], "call_id": call_id, "arguments": ""}
        await self.send({"type": "response.created", "response": {
            "id": response_id, "object": "realtime.response", "status": "in_progress", "output": []}})
        await self.send({"type": "response.output_item.added", "response_id": response_id,
                         "output_index": 0, "item": item_json})
        await self.send({"type": "conversation.item.added", "previous_item_id": previous, "item": item_json})
        base = {"response_id": response_id, "item_id": item_id, "output_index": 0, "call_id": call_id}
        await self.send({"type": "response.function_call_arguments.delta", **base, "delta": arguments})
        await self.send({"type": "response.function_call_arguments.done", **base, "name": tool["name"],
                         "arguments": arguments})
        done_item = {**item_json, "status": "completed", "arguments": arguments}
        await self.send({"type": "response.output_item.done", "response_id": response_id,
                         "output_index": 0, "item": done_item})
        await self.send({"type": "conversation.item.done", "previous_item_id": previous, "item": done_item})
        tokens = 10 * len(self.order)
        await self.send({"type": "response.done", "response": {
            "id": response_id, "object": "realtime.response", "status": "completed", "status_details": None,
            "output": [done_item],
            "usage": {"total_tokens": tokens + 5, "input_tokens": tokens, "output_tokens": 5,
                      "input_token_details": {"text_tokens": tokens, "audio_tokens": 0, "cached_tokens": 0},
                      "output_token_details": {"text_tokens": 5, "audio_tokens": 0}},
        }})
        self.peer.log(f"session {self.record.number}: called tool {tool['name']} ({call_id})")


def _sample_arguments(schema: dict[str, Any]) -> dict[str, Any]:
    """Arguments that satisfy the tool's required properties, one plain value per type."""
    samples = {"string": "loopback", "integer": 1, "number": 1, "boolean": True, "array": [], "object": {}}
    properties = schema.get("properties") or {}
    out: dict[str, Any] = {}
    for name in schema.get("required") or []:
        spec = properties.get(name) or {}
        if spec.get("enum"):
            out[name] = spec["enum"][0]
        elif spec.get("examples"):
            out[name] = spec["examples"][0]
        else:
            kind = spec.get("type")
            out[name] = samples.get(kind if isinstance(kind, str) else "string", "loopback")
    return out
