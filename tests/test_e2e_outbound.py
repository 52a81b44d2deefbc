"""An outbound call end to end: supactl dial's library creates it at the Twilio contract server,
which then plays the callee against the real function on Deno (Postgres store, Realtime contract
peer): the voice webhook signed as Twilio signs it (Direction outbound-api, AnsweredBy when machine
detection was asked), the media stream run by the project's simulator, then the status callbacks
in shuffled order, each sent twice."""

from __future__ import annotations

import asyncio
import json
import secrets

import httpx
import pytest

from supactl.cloud import outbound
from supactl.cloud.twilio_api import TwilioClient
from supactl.database.connection import connect
from supactl.simulator.simulated_call import CallOptions, place_call_async
from supactl.simulator.twiml import Recording
from supactl.twilio_signature import sign
from tests.attack_support import (TURN_DETECTION, FunctionUnderAttack, add_tenant_number,
                                  short_call_script)
from tests.attack_support import peer  # noqa: F401  (module fixture: the Realtime contract peer)
from tests.contract_servers.twilio import TwilioContractServer

CALLEE = "+14155550177"
OUTBOUND_GREETING = "Hi, this is Ada from Acme Dental calling about your appointment."
VOICEMAIL = "Sorry we missed you, please call Acme Dental back."
FUNCTION_PORT = 48021
# Twilio's shape (32 hex digits), which supactl's client checks; the function signs with it too.
AUTH_TOKEN = secrets.token_hex(16)


@pytest.fixture(scope="module")
def twilio():
    with TwilioContractServer(auth_token=AUTH_TOKEN) as server:
        yield server


@pytest.fixture(scope="module")
def function(db_url: str, peer):  # noqa: F811
    running = FunctionUnderAttack(db_url, peer.url, port=FUNCTION_PORT, extra_env={"TWILIO_AUTH_TOKEN": AUTH_TOKEN})
    yield running
    running.kill()


def tenant(db_url: str, twilio: TwilioContractServer, number: str, **agent: object) -> str:
    twilio.add_number(number)
    return add_tenant_number(db_url, f"outbound {number}", number, greeting="Inbound greeting",
                             outbound_greeting=OUTBOUND_GREETING, turn_detection=TURN_DETECTION, **agent)


def dial(twilio: TwilioContractServer, function: FunctionUnderAttack, number: str, *,
         context: dict | None = None, machine_detection: bool = False) -> dict:
    client = TwilioClient.from_config(environ={"TWILIO_ACCOUNT_SID": twilio.account_sid,
                                               "TWILIO_AUTH_TOKEN": twilio.auth_token,
                                               "TWILIO_API_URL": twilio.base_url})
    with client.http:
        sid = outbound.place_call(client, outbound.dial_form(
            to=CALLEE, from_number=number, function_url=function.public_url, context=context,
            machine_detection=machine_detection, record=False))["sid"]
    return twilio.calls_api.calls[sid]


def forged_status_callback(call: dict) -> httpx.Response:
    url = call["parameters"]["StatusCallback"]
    params = {"AccountSid": call["account_sid"], "CallSid": call["sid"], "CallStatus": "busy",
              "Direction": "outbound-api", "From": call["from"], "To": call["to"]}
    return httpx.post(url, data=params, timeout=10, headers={"X-Twilio-Signature": sign("0" * 32, url, params)})


def call_row(db_url: str, call_sid: str) -> dict:
    with connect(db_url) as conn:
        row = conn.execute("select tenant_id::text, direction, twilio_status, twilio_duration_s, answered_by from calls"
                           " where call_sid = %s", (call_sid,)).fetchone()
    assert row is not None, f"no row for {call_sid}"
    return dict(zip(("tenant_id", "direction", "twilio_status", "twilio_duration_s", "answered_by"), row))


def test_the_callee_hears_the_outbound_greeting_first_with_the_context_in_the_instructions(
        function, twilio, peer, db_url):  # noqa: F811
    owner = tenant(db_url, twilio, "+14155550301")
    call = dial(twilio, function, "+14155550301", context={"order": "A-17"}, machine_detection=True)
    sessions_before = len(peer.sessions)
    report = twilio.answer_call(call["sid"], short_call_script(), answered_by="human")
    assert report.ended_by == "caller", report
    session = peer.sessions[sessions_before]
    instructions = session.client_events("session.update")[0]["session"]["instructions"]
    assert '{"order":"A-17"}' in instructions and "outbound call" in instructions
    kinds = [event.get("type") for event in session.events]
    first_audio = kinds.index("input_audio_buffer.append") if "input_audio_buffer.append" in kinds else len(kinds)
    assert "response.create" in kinds[:first_audio], f"the agent must speak first: {kinds[:first_audio]}"
    before_audio = json.dumps(session.events[:first_audio])
    assert OUTBOUND_GREETING in before_audio and "Inbound greeting" not in before_audio

    # Twilio's callbacks, in any order and each retried: the row ends completed with the duration.
    statuses = twilio.deliver_status_callbacks(call["sid"], duration=7, seed=13, answered_by="human")
    assert statuses == [204] * 8, statuses
    row = call_row(db_url, call["sid"])
    assert row == {"tenant_id": owner, "direction": "outbound", "twilio_status": "completed",
                   "twilio_duration_s": 7, "answered_by": "human"}

    forged = forged_status_callback(call)
    assert forged.status_code == 403
    assert call_row(db_url, call["sid"])["twilio_status"] == "completed"


@pytest.mark.parametrize("action, says", [("message", [VOICEMAIL]), ("hang_up", [])])
def test_an_answering_machine_gets_what_the_tenant_set(function, twilio, peer, db_url, action, says):  # noqa: F811
    number = "+14155550302" if action == "message" else "+14155550303"
    owner = tenant(db_url, twilio, number, voicemail_action=action, voicemail_message=VOICEMAIL)
    call = dial(twilio, function, number, machine_detection=True)
    sessions_before = len(peer.sessions)
    report = twilio.answer_call(call["sid"], short_call_script(), answered_by="machine_start")
    assert report.says == says
    assert report.ended_by == "function" and report.streams == 0
    assert len(peer.sessions) == sessions_before, "no model session for a machine"
    assert call_row(db_url, call["sid"])["tenant_id"] == owner


# -- an inbound call is recorded from the webhook's answer when the tenant turned recording on ------

@pytest.mark.parametrize("record", [True, False])
def test_an_inbound_call_is_recorded_only_when_the_tenant_says_so(function, twilio, db_url, record):
    number = "+14155550304" if record else "+14155550305"
    owner = tenant(db_url, twilio, number, record_calls=record)
    options = CallOptions(function_url=function.public_url, auth_token=AUTH_TOKEN, from_number=CALLEE,
                          to_number=number)
    report = asyncio.run(place_call_async(options, short_call_script()))
    assert report.ended_by == "caller", report
    callback = f"{function.public_url}?event=recording-status"
    assert report.recordings == ([Recording("dual", callback)] if record else [])
    if not record:
        return
    # Twilio posts the finished recording's status to that callback, signed: it is stored for the tenant.
    params = {"AccountSid": options.account_sid, "CallSid": options.call_sid, "RecordingSid": "RE" + "1" * 32,
              "RecordingStatus": "completed", "RecordingDuration": "3", "RecordingChannels": "2",
              "RecordingSource": "StartCallRecordingTwiML"}
    forged = httpx.post(callback, data=params, timeout=10,
                        headers={"X-Twilio-Signature": sign("0" * 32, callback, params)})
    assert forged.status_code == 403
    answered = httpx.post(callback, data=params, timeout=10,
                          headers={"X-Twilio-Signature": sign(AUTH_TOKEN, callback, params)})
    assert answered.status_code == 204
    with connect(db_url) as conn:
        rows = conn.execute("select tenant_id::text, channels, duration_s from call_recordings where call_sid = %s",
                            (options.call_sid,)).fetchall()
    assert rows == [(owner, 2, 3)]
