"""The voice webhook replayed for a call that has ended gets nothing usable (<Hangup/>) and leaves
its rows as they were; Twilio's own retry of the webhook before the stream connected still gets a
<Connect><Stream> that carries the call. (Replays of stream tokens are tests of their own.)"""

from __future__ import annotations

import asyncio

import pytest

from supactl.database.connection import connect
from supactl.simulator.simulated_call import new_sid
from supactl.simulator.twiml import parse_twiml
from tests.attack_support import (  # noqa: F401 (fixtures)
    attack_db, function, good_number, peer, place_calls, stored_turn_roles, webhook,
)

pytestmark = pytest.mark.slow

THREE_TURNS = ("completed", ["assistant", "user", "assistant"])


def call_rows(db_url: str, call_sid: str) -> tuple:
    with connect(db_url) as conn:
        call = conn.execute("select to_jsonb(c) from calls c where call_sid = %s", (call_sid,)).fetchone()
        turns = conn.execute("select to_jsonb(t) from call_turns t where call_sid = %s order by seq",
                             (call_sid,)).fetchall()
    return call, turns


def test_a_replayed_webhook_for_an_ended_call_hangs_up_and_a_retry_before_the_stream_still_connects(
        function, attack_db, good_number):
    ended_sid, retried_sid = new_sid("CA"), new_sid("CA")
    # Twilio's retry: the first answer never reached it, so it asks again before any stream opened.
    first_answer = webhook(function, retried_sid, good_number)
    first = parse_twiml(first_answer.text, function.public_url)
    assert first_answer.status_code == 200 and first.connect is not None

    reports = asyncio.run(place_calls(function, good_number, 2, call_sids=[ended_sid, retried_sid]))
    for report in reports:
        assert (report.ended_by, report.streams, report.protocol_errors) == ("caller", 1, []), report
    assert stored_turn_roles(attack_db, retried_sid) == THREE_TURNS

    assert stored_turn_roles(attack_db, ended_sid) == THREE_TURNS
    before = call_rows(attack_db, ended_sid)
    replies = [webhook(function, ended_sid, good_number, status) for status in ("ringing", "in-progress")]
    print(f"\nreplayed webhook for an ended call: {[r.status_code for r in replies]} "
          f"{[r.text.strip() for r in replies]}")
    for reply in replies:
        twiml = parse_twiml(reply.text, function.public_url)
        assert reply.status_code == 200 and "<Hangup" in reply.text and twiml.connect is None
    assert call_rows(attack_db, ended_sid) == before, "the call row and its turns are left as they were"
    assert len(function.events("call.webhook_replayed")) == len(replies)
