"""Garbage on stream sockets while ten good calls run on the same worker: before `start` (counted
against the pre-start allowance, then closed) and after a valid `start` (each frame ignored and
counted, the call going on). All ten good calls must complete with their turns stored."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from supactl.simulator.simulated_call import new_sid
from supactl.simulator.twiml import parse_twiml
from tests.attack_support import (  # noqa: F401 (fixtures)
    POLICY_VIOLATION, Limits, attack_db, function, good_number, peer, place_calls, stored_turn_roles,
    stream_upgrade_headers, webhook,
)

pytestmark = pytest.mark.slow

GOOD_CALLS = 10
SILENCE = base64.b64encode(b"\xff" * 160).decode()


def garbage(stream_sid: str) -> list[str | bytes]:
    """What a confused or hostile peer sends on a stream: every kind of frame the codec must refuse."""
    def frame(event: str, seq: int, **body: object) -> str:
        return json.dumps({"event": event, "sequenceNumber": str(seq), "streamSid": stream_sid, **body})

    return [
        "this is not json", "{\"event\": \"media\"", "[1, 2, 3]", "null", b"\x00\x01binary",
        json.dumps({"event": "media", "media": {"payload": "A" * (Limits.max_twilio_frame_chars + 10)}}),
        frame("hello", 3), frame("clear", 4), json.dumps({"no": "event"}),
        frame("media", 5, media={"payload": "not base64 !!"}), frame("media", 6, media={"payload": 42}),
        frame("media", 99, media={"track": "inbound", "payload": SILENCE}),  # out of order
        frame("media", 2, media={"track": "inbound", "payload": SILENCE}),
        frame("mark", 7, mark={}), frame("dtmf", 8, dtmf={"digit": "xx"}),
        frame("start", 9, start={"callSid": "CA" + "0" * 32}),  # a second start
    ]


async def garbage_before_start(function) -> dict:
    """A few malformed frames and no `start`: within the allowance, so closed at the deadline."""
    async with connect(function.stream_url, additional_headers=stream_upgrade_headers(function),
                       ping_interval=None) as ws:
        started = time.monotonic()
        # Text frames only, each within the size: a binary one counts as oversized (closed at once).
        small = [m for m in garbage("MZ" + "0" * 32) if isinstance(m, str) and len(m) <= Limits.max_pre_start_message_chars]
        for message in small[: Limits.max_pre_start_messages - 1]:
            await ws.send(message)
        try:
            await asyncio.wait_for(ws.wait_closed(), Limits.pre_start_deadline_s + 3)
        except TimeoutError:
            pass
        return {"code": ws.close_code, "closed_after_s": time.monotonic() - started}


async def garbage_after_start(function, number: str) -> dict:
    """A call with a valid `start` (from the signed webhook) that then sends only garbage, media
    and all, before it stops: the function ignores each bad frame and ends the call on `stop`."""
    call_sid = new_sid("CA")
    twiml = parse_twiml((await asyncio.to_thread(webhook, function, call_sid, number)).text, function.public_url)
    assert twiml.connect is not None
    stream_sid = new_sid("MZ")
    async with connect(twiml.connect.url, additional_headers=stream_upgrade_headers(function),
                       ping_interval=None, max_size=2**22) as ws:
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        await ws.send(json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": stream_sid, "start": {
            "accountSid": "AC" + "0" * 32, "streamSid": stream_sid, "callSid": call_sid, "tracks": ["inbound"],
            "customParameters": twiml.connect.parameters,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}))
        # Read what the function sends (its greeting): an unread socket stops being read by the client.
        drained = asyncio.ensure_future(drain(ws))
        for _ in range(20):  # two seconds of this, interleaved with silence as a real call would be
            for message in garbage(stream_sid):
                await ws.send(message)
            await asyncio.sleep(0.1)
        await ws.send(json.dumps({"event": "stop", "streamSid": stream_sid, "stop": {"callSid": call_sid}}))
        stopped = time.monotonic()
        try:
            await asyncio.wait_for(drained, 10)
        except TimeoutError:
            pass
        return {"call_sid": call_sid, "code": ws.close_code, "closed_after_stop_s": time.monotonic() - stopped}


async def drain(ws) -> None:
    try:
        async for _ in ws:
            pass
    except ConnectionClosed:
        pass


def test_ten_good_calls_complete_with_their_turns_while_other_sockets_send_garbage(function, attack_db, good_number):
    async def attack():
        return await asyncio.gather(
            place_calls(function, good_number, GOOD_CALLS),
            *(garbage_before_start(function) for _ in range(4)),
            *(garbage_after_start(function, good_number) for _ in range(3)),
        )

    started = time.monotonic()
    reports, *attackers = asyncio.run(attack())
    elapsed = time.monotonic() - started
    before, after = attackers[:4], attackers[4:]
    stored = [stored_turn_roles(attack_db, report.call_sid) for report in reports]
    latencies = [round(max(r.latencies_ms)) for r in reports if r.latencies_ms]
    print(f"\n{GOOD_CALLS} good calls beside 7 garbage sockets in {elapsed:.1f} s: "
          f"{sum(s == ('completed', ['assistant', 'user', 'assistant']) for s in stored)} completed with 3 turns; "
          f"worst reply latency per call (ms) {latencies}; pre-start garbage closed with "
          f"{[b['code'] for b in before]} after {[round(b['closed_after_s'], 1) for b in before]} s; "
          f"garbage calls closed {[round(a['closed_after_stop_s'], 2) for a in after]} s after their stop")
    for report in reports:
        assert report.ended_by == "caller" and report.protocol_errors == [], report
        assert report.frames_received > 0 and report.latencies_ms
    assert stored == [("completed", ["assistant", "user", "assistant"])] * GOOD_CALLS

    assert [b["code"] for b in before] == [POLICY_VIOLATION] * 4
    assert all(Limits.pre_start_deadline_s - 0.5 < b["closed_after_s"] < Limits.pre_start_deadline_s + 1.5
               for b in before)
    ended = {line.get("call_sid"): line for line in function.events("call.ended")}
    for garbage_call in after:
        # Ended by its own `stop`, every kind of bad frame counted and none of them a turn.
        line = ended[garbage_call["call_sid"]]
        assert (line["status"], line["reason"]) == ("completed", "twilio_stop"), line
        assert {"twilio_not_json", "twilio_binary", "twilio_oversized", "twilio_unknown_event",
                "twilio_bad_shape"} <= set(line), line
        assert stored_turn_roles(attack_db, garbage_call["call_sid"])[0] == "completed"
        assert garbage_call["code"] == 1000 and garbage_call["closed_after_stop_s"] < 5
    assert function.alive()
