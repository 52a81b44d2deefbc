"""Twilio's view of each call in the database (record_twilio_call_status, record_call_recording):
callbacks in any order and any number of retries end on the same row, a final status is never
replaced, a call hung up during a handoff is finalized, and tenants see only their recordings."""

from __future__ import annotations

import itertools
import json
import random

import psycopg
import pytest

_sids = (f"CA{n:032d}" for n in itertools.count(900))
_recordings = (f"RE{n:032x}" for n in itertools.count(1))


@pytest.fixture
def conn(db_url: str):
    with psycopg.connect(db_url, autocommit=True) as connection:
        yield connection


def new_tenant(conn: psycopg.Connection) -> str:
    return str(conn.execute("insert into public.tenants (name) values (gen_random_uuid()::text) returning id").fetchone()[0])  # type: ignore[index]


def new_call(conn: psycopg.Connection, tenant: str, status: str = "in_progress") -> str:
    sid = next(_sids)
    conn.execute("insert into public.calls (call_sid, tenant_id, status) values (%s, %s, %s)", (sid, tenant, status))
    return sid


def callback(conn: psycopg.Connection, sid: str, status: str, duration: int | None = None,
             answered_by: str | None = None) -> bool:
    return conn.execute("select public.record_twilio_call_status(%s, %s, %s, %s)",
                        (sid, status, duration, answered_by)).fetchone()[0]  # type: ignore[index]


def twilio_view(conn: psycopg.Connection, sid: str) -> tuple:
    return conn.execute("select twilio_status, twilio_duration_s, answered_by, status from public.calls "
                        "where call_sid = %s", (sid,)).fetchone()  # type: ignore[return-value]


LIFECYCLE = [("initiated", None, None), ("ringing", None, None), ("in-progress", None, "human"),
             ("completed", 42, "human")]


@pytest.mark.parametrize("seed", range(20))
def test_callbacks_in_any_order_and_with_retries_end_on_the_final_status(conn, seed):
    tenant = new_tenant(conn)
    sid = new_call(conn, tenant)
    arrivals = [event for event in LIFECYCLE for _ in range(random.Random(seed).randint(1, 3))]
    random.Random(seed).shuffle(arrivals)
    for status, duration, answered_by in arrivals:
        callback(conn, sid, status, duration, answered_by)
    assert twilio_view(conn, sid) == ("completed", 42, "human", "in_progress")


def test_a_final_status_is_never_replaced_and_a_retry_changes_nothing(conn):
    sid = new_call(conn, new_tenant(conn))
    assert callback(conn, sid, "ringing") is True
    assert callback(conn, sid, "ringing") is False
    assert callback(conn, sid, "no-answer", 0) is True
    assert callback(conn, sid, "completed", 30) is False
    assert callback(conn, sid, "in-progress") is False
    assert twilio_view(conn, sid)[:2] == ("no-answer", 0)


def test_unknown_status_or_call_is_ignored(conn):
    sid = new_call(conn, new_tenant(conn))
    assert callback(conn, sid, "exploded") is False
    assert callback(conn, "CA" + "f" * 32, "completed", 5) is False
    assert twilio_view(conn, sid)[0] is None


def test_a_hang_up_during_a_handoff_is_finalized_from_the_status_callback(conn):
    sid = new_call(conn, new_tenant(conn), status="handed_off")
    callback(conn, sid, "completed", 95)
    status, ended, reason = conn.execute("select status, ended_at is not null, end_reason from public.calls "
                                         "where call_sid = %s", (sid,)).fetchone()  # type: ignore[misc]
    assert (status, ended) == ("completed", True)
    assert "handoff" in reason


def test_a_live_stream_keeps_its_own_end(conn):
    # The bridge of a live stream writes the call's end itself; the callback only adds Twilio's view.
    sid = new_call(conn, new_tenant(conn))
    callback(conn, sid, "completed", 12)
    assert twilio_view(conn, sid) == ("completed", 12, None, "in_progress")


def record(conn, sid, rec, status, channels=None, duration=None) -> bool:
    return conn.execute("select public.record_call_recording(%s, %s, %s, %s, %s)",
                        (sid, rec, status, channels, duration)).fetchone()[0]  # type: ignore[index]


def test_recording_callbacks_are_stored_once_and_final_wins(conn):
    tenant = new_tenant(conn)
    sid = new_call(conn, tenant)
    rec = next(_recordings)
    assert record(conn, sid, rec, "completed", 2, 61) is True
    assert record(conn, sid, rec, "in-progress") is False  # late: never back from completed
    assert record(conn, sid, rec, "completed", 2, 61) is False  # retry
    assert conn.execute("select tenant_id::text, status, channels, duration_s from public.call_recordings "
                        "where recording_sid = %s", (rec,)).fetchone() == (tenant, "completed", 2, 61)
    assert record(conn, "CA" + "e" * 32, next(_recordings), "completed") is False  # no such call


def as_tenant(conn: psycopg.Connection, tenant: str, sql: str) -> list[tuple]:
    with conn.transaction():
        conn.execute("set local role authenticated")
        conn.execute("select set_config('request.jwt.claims', %s, true)",
                     (json.dumps({"role": "authenticated", "app_metadata": {"tenant_id": tenant}}),))
        rows = conn.execute(sql).fetchall()
    return rows


def test_tenants_see_only_their_recordings_and_cannot_write_status(conn):
    mine, theirs = new_tenant(conn), new_tenant(conn)
    mine_rec, theirs_rec = next(_recordings), next(_recordings)
    record(conn, new_call(conn, mine), mine_rec, "completed", 2, 10)
    record(conn, new_call(conn, theirs), theirs_rec, "completed", 2, 10)
    assert as_tenant(conn, mine, "select recording_sid from public.call_recordings") == [(mine_rec,)]
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        as_tenant(conn, mine, f"select public.record_twilio_call_status('{new_call(conn, mine)}', 'completed')")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        as_tenant(conn, mine, f"insert into public.call_recordings values ('{next(_recordings)}', 'x', '{mine}', 'completed')")


def test_recording_is_off_by_default(conn):
    tenant = new_tenant(conn)
    conn.execute("insert into public.tenant_agents (tenant_id) values (%s)", (tenant,))
    assert conn.execute("select record_calls, voicemail_action from public.tenant_agents where tenant_id = %s",
                        (tenant,)).fetchone() == (False, "hang_up")
