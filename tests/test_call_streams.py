"""Each stream of a call is accepted once (claim_call_stream), and calls whose stream is gone are
finalized (finalize_stale_calls): the database half of "a stream token means this stream, once"."""

from __future__ import annotations

import itertools
import json

import psycopg
import pytest

_sids = (f"CA{n:032d}" for n in itertools.count(1))


@pytest.fixture
def conn(db_url: str):
    with psycopg.connect(db_url, autocommit=True) as connection:
        yield connection


@pytest.fixture
def tenant(conn: psycopg.Connection) -> str:
    return str(conn.execute("insert into public.tenants (name) values (gen_random_uuid()::text) returning id").fetchone()[0])  # type: ignore[index]


def new_call(conn: psycopg.Connection, tenant: str, **columns: object) -> str:
    sid = next(_sids)
    names = ["call_sid", "tenant_id", *columns]
    conn.execute(f"insert into public.calls ({', '.join(names)}) values ({', '.join(['%s'] * len(names))})",
                 (sid, tenant, *columns.values()))
    return sid


def claim(conn: psycopg.Connection, sid: str, tenant: str, stream: int) -> list[tuple]:
    return conn.execute("select call_sid, status, handoff_count from public.claim_call_stream(%s, %s, %s)",
                        (sid, tenant, stream)).fetchall()


def row(conn: psycopg.Connection, sid: str) -> tuple:
    return conn.execute("select status, handoff_count, end_reason, stream_seen_at is not null from public.calls "
                        "where call_sid = %s", (sid,)).fetchone()  # type: ignore[return-value]


def hand_off(conn: psycopg.Connection, sid: str) -> None:
    # What the bridge writes when it moves the call to a fresh worker.
    conn.execute("update public.calls set status = 'handed_off', end_reason = 'handoff: wall clock', "
                 "handed_off_at = now() where call_sid = %s", (sid,))


def test_the_first_stream_claims_the_call_once(conn, tenant):
    sid = new_call(conn, tenant)
    assert claim(conn, sid, tenant, 0) == [(sid, "in_progress", 0)]
    # A replayed token (or a second socket with the same one) finds the claim taken.
    assert claim(conn, sid, tenant, 0) == []
    assert row(conn, sid)[3] is True


def test_a_claim_for_another_tenant_or_an_unknown_call_gets_nothing(conn, tenant):
    other = str(conn.execute("insert into public.tenants (name) values ('claim-other') returning id").fetchone()[0])  # type: ignore[index]
    sid = new_call(conn, tenant)
    assert claim(conn, sid, other, 0) == []
    assert claim(conn, next(_sids), tenant, 0) == []
    assert claim(conn, sid, tenant, 0) == [(sid, "in_progress", 0)]


def test_a_finished_call_cannot_be_reopened(conn, tenant):
    sid = new_call(conn, tenant, status="completed", end_reason="caller hung up")
    assert claim(conn, sid, tenant, 0) == []
    assert claim(conn, sid, tenant, 1) == []
    assert row(conn, sid)[:3] == ("completed", 0, "caller hung up")


def test_each_handoff_is_resumed_once_and_in_order(conn, tenant):
    sid = new_call(conn, tenant)
    claim(conn, sid, tenant, 0)
    # Resuming before the call was handed off (a replayed connect action during the live call).
    assert claim(conn, sid, tenant, 1) == []
    hand_off(conn, sid)
    assert claim(conn, sid, tenant, 2) == []  # skipping a handoff
    assert claim(conn, sid, tenant, 1) == [(sid, "in_progress", 1)]
    assert claim(conn, sid, tenant, 1) == []  # the same resume token again
    assert row(conn, sid)[:3] == ("in_progress", 1, None)
    hand_off(conn, sid)
    assert claim(conn, sid, tenant, 1) == []  # an old token for the previous handoff
    assert claim(conn, sid, tenant, 2) == [(sid, "in_progress", 2)]
    assert row(conn, sid)[1] == 2  # two handoffs, counted twice, not more


@pytest.mark.parametrize("role", ["anon", "authenticated"])
def test_the_api_roles_can_neither_claim_nor_sweep_nor_touch_a_worker_lease(db_url, tenant, role):
    worker = "00000000-0000-4000-8000-000000000001"
    with psycopg.connect(db_url) as conn:
        sid = new_call(conn, tenant)
        conn.commit()
        for statement, params in (("select * from public.claim_call_stream(%s, %s, 0)", (sid, tenant)),
                                  ("select public.finalize_stale_calls(interval '0 seconds')", ()),
                                  # Taking over a live call, or faking a worker's liveness.
                                  ("select * from public.resume_crashed_call(%s, 0, 0, 'handoff:crash:reply')", (sid,)),
                                  ("select public.renew_worker_lease(%s)", (worker,)),
                                  ("select public.release_worker_lease(%s)", (worker,)),
                                  ("select * from public.worker_leases", ()),
                                  ("insert into public.worker_leases (worker_id) values (%s)", (worker,))):
            conn.execute(f"set local role {role}")
            conn.execute("select set_config('request.jwt.claims', %s, true)",
                         (json.dumps({"role": role, "tenant_id": tenant}),))
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement, params)
            conn.rollback()
        assert row(conn, sid)[3] is False


def test_the_sweep_finalizes_only_calls_without_a_sign_of_life(conn, tenant):
    old = "now() - interval '10 minutes'"
    never_opened = new_call(conn, tenant)
    stopped = new_call(conn, tenant)
    not_resumed = new_call(conn, tenant)
    live = new_call(conn, tenant)
    fresh = new_call(conn, tenant)
    done = new_call(conn, tenant, status="completed", end_reason="caller hung up")
    for sid in (stopped, not_resumed, live):
        claim(conn, sid, tenant, 0)
    hand_off(conn, not_resumed)
    conn.execute(f"update public.calls set started_at = {old} where call_sid = any(%s)",
                 ([never_opened, stopped, not_resumed, live, done],))
    conn.execute(f"update public.calls set stream_seen_at = {old} where call_sid = any(%s)", ([stopped, not_resumed],))
    conn.execute(f"update public.calls set handed_off_at = {old} where call_sid = %s", (not_resumed,))
    # `live` started long ago but its bridge beat a moment ago; `fresh` has just started.

    swept = conn.execute("select public.finalize_stale_calls(interval '2 minutes')").fetchone()[0]  # type: ignore[index]

    assert swept == 3
    assert row(conn, never_opened)[0::2] == ("failed", "stale: the stream never opened")
    assert row(conn, stopped)[0::2] == ("failed", "stale: the stream stopped without ending the call")
    assert row(conn, not_resumed)[0::2] == ("failed", "stale: no stream resumed the call after its handoff")
    assert row(conn, live)[0] == row(conn, fresh)[0] == "in_progress"
    assert row(conn, done)[0::2] == ("completed", "caller hung up")
    assert conn.execute("select public.finalize_stale_calls()").fetchone()[0] == 0  # type: ignore[index]


def test_the_sweep_reads_only_live_rows_through_its_partial_index(conn, tenant):
    conn.execute(
        "insert into public.calls (call_sid, tenant_id, status, ended_at) "
        "select 'CA' || md5(g::text), %s, 'completed', now() from generate_series(1, 20000) g", (tenant,))
    conn.execute("analyze public.calls")
    plan = conn.execute(
        "explain (format json) select 1 from public.calls where status in ('in_progress', 'handed_off') "
        "and greatest(started_at, stream_seen_at, handed_off_at) < now() - interval '2 minutes'").fetchone()[0][0]["Plan"]  # type: ignore[index]
    scans = [plan] + plan.get("Plans", [])
    assert any(node.get("Index Name") == "calls_live_last_seen_idx" for node in scans), plan


def test_a_renewal_sweeps_leases_lapsed_for_ten_minutes_and_keeps_the_rest(conn):
    stale, recent, renewing = (str(conn.execute("select gen_random_uuid()").fetchone()[0]) for _ in range(3))  # type: ignore[index]
    conn.execute("insert into public.worker_leases (worker_id, renewed_at) values "
                 "(%s, now() - interval '11 minutes'), (%s, now() - interval '9 minutes')", (stale, recent))
    conn.execute("select public.renew_worker_lease(%s)", (renewing,))
    left = {str(r[0]) for r in conn.execute("select worker_id from public.worker_leases where worker_id in (%s, %s, %s)",
                                            (stale, recent, renewing))}
    assert left == {recent, renewing}
    # A worker that stalled past the sweep gets its row back with its own next renewal.
    conn.execute("update public.worker_leases set renewed_at = now() - interval '11 minutes' where worker_id = %s",
                 (renewing,))
    conn.execute("select public.renew_worker_lease(%s)", (renewing,))
    assert conn.execute("select renewed_at > now() - interval '1 minute' from public.worker_leases "
                        "where worker_id = %s", (renewing,)).fetchone() == (True,)
