"""Stream tokens mean "this stream, once", across processes: the function on the pinned Deno, real
Postgres, the loopback model. A TwiML captured from a signed webhook (Twilio's own retry, say)
opens no second model session once the call's stream has claimed the row, neither while the call
is live nor after it ended, and leaves the row and its turns as they were; the webhook replayed
then hangs up. (In-process cases, resume tokens included, are in app_test.ts.)"""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from supactl.simulator.simulated_call import new_sid
from supactl.simulator.twiml import parse_twiml
from tests.attack_support import (  # noqa: F401 (fixtures)
    attack_db, function, good_number, peer, place_calls, stored_turn_roles, stream_upgrade_headers, webhook,
)
from tests.test_attack_webhook_replay import THREE_TURNS, call_rows

pytestmark = pytest.mark.slow


async def replay_stream(function, call_sid: str, parameters: dict[str, str]) -> int | None:
    """Opens the stream with captured parameters, as an attacker who saw the TwiML would; the
    close code the function answered with."""
    async with connect(function.stream_url, additional_headers=stream_upgrade_headers(function),
                       open_timeout=15, ping_interval=None, close_timeout=2) as ws:
        stream_sid = new_sid("MZ")
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        await ws.send(json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": stream_sid, "start": {
            "accountSid": new_sid("AC"), "streamSid": stream_sid, "callSid": call_sid, "tracks": ["inbound"],
            "customParameters": parameters,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}))
        try:
            await asyncio.wait_for(ws.wait_closed(), 10)
        except (TimeoutError, ConnectionClosed):
            pass
        return ws.close_code


def test_a_captured_stream_token_replayed_after_the_call_ended_opens_nothing_and_the_webhook_hangs_up(
        function, attack_db, good_number):
    call_sid = new_sid("CA")
    captured = parse_twiml(webhook(function, call_sid, good_number).text, function.public_url).connect
    assert captured is not None and captured.parameters["issued_at"].isdigit()

    [report] = asyncio.run(place_calls(function, good_number, 1, call_sids=[call_sid]))
    assert (report.ended_by, report.streams, report.protocol_errors) == ("caller", 1, []), report
    assert stored_turn_roles(attack_db, call_sid) == THREE_TURNS
    before = call_rows(attack_db, call_sid)
    sessions_before = len(function.events("model.connecting"))

    code = asyncio.run(replay_stream(function, call_sid, captured.parameters))
    replayed = webhook(function, call_sid, good_number)
    print(f"\nreplayed token after the call ended: close {code}; replayed webhook: {replayed.text.strip()}")
    assert len(function.events("model.connecting")) == sessions_before, "no model session for the replay"
    assert function.events("stream.claim_refused"), "refused at its claim"
    assert code == 1008, "a replayed token is a policy violation (RFC 6455 7.4.1), not a call that ended"
    assert "<Hangup" in replayed.text and parse_twiml(replayed.text, function.public_url).connect is None
    assert call_rows(attack_db, call_sid) == before, "the call row and its turns are left as they were"
