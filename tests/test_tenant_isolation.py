"""Row-level security as PostgREST runs it: `set local role` plus `request.jwt.claims`, real Postgres."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

TABLES = {  # table -> the column that names its tenant
    "tenants": "id",
    "tenant_phone_numbers": "tenant_id",
    "tenant_agents": "tenant_id",
    "calls": "tenant_id",
    "call_turns": "tenant_id",
}


def call_sid() -> str:
    return "CA" + uuid.uuid4().hex


def seed(conn, turns_per_tenant: list[int]) -> list[str]:
    """Create one tenant per entry, each with a number, agent settings, a call and that many turns."""
    tenant_ids = []
    for index, turn_count in enumerate(turns_per_tenant):
        tenant_id = conn.execute(
            "insert into public.tenants (name) values (%s) returning id::text", (f"t-{uuid.uuid4()}",)
        ).fetchone()[0]
        tenant_ids.append(tenant_id)
        conn.execute(
            "insert into public.tenant_phone_numbers values (%s, %s)",
            (f"+1555{uuid.uuid4().int % 10**7:07d}", tenant_id),
        )
        conn.execute("insert into public.tenant_agents (tenant_id, instructions) values (%s, 'hi')", (tenant_id,))
        sid = call_sid()
        conn.execute("insert into public.calls (call_sid, tenant_id) values (%s, %s)", (sid, tenant_id))
        for seq in range(turn_count):
            conn.execute(
                "insert into public.call_turns (tenant_id, call_sid, role, text, item_id, seq) values (%s,%s,%s,%s,%s,%s)",
                (tenant_id, sid, "user" if seq % 2 == 0 else "assistant", f"turn {seq}", f"item_{seq}", seq),
            )
    return tenant_ids


def act_as(conn, role: str, claims: dict | str | None) -> None:
    """What PostgREST does at the start of each request's transaction."""
    conn.execute(f"set local role {role}")
    if claims is not None:
        raw = claims if isinstance(claims, str) else json.dumps(claims)
        conn.execute("select set_config('request.jwt.claims', %s, true)", (raw,))


def visible(conn, table: str) -> list[str]:
    column = TABLES[table]
    return [row[0] for row in conn.execute(f"select {column}::text from public.{table}").fetchall()]


def claim_forms(tenant_id: str) -> list[dict]:
    return [
        {"role": "authenticated", "sub": str(uuid.uuid4()), "tenant_id": tenant_id},
        {"role": "authenticated", "sub": str(uuid.uuid4()), "app_metadata": {"tenant_id": tenant_id}},
    ]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(turns_per_tenant=st.lists(st.integers(min_value=0, max_value=8), min_size=2, max_size=6), data=st.data())
def test_a_tenant_sees_exactly_its_own_rows_in_every_table(db_url, turns_per_tenant, data):
    with psycopg.connect(db_url) as conn:
        tenant_ids = seed(conn, turns_per_tenant)
        me = data.draw(st.sampled_from(range(len(tenant_ids))))
        form = data.draw(st.sampled_from([0, 1]))
        with conn.transaction():
            act_as(conn, "authenticated", claim_forms(tenant_ids[me])[form])
            for table in TABLES:
                assert set(visible(conn, table)) <= {tenant_ids[me]}, table
            assert len(visible(conn, "call_turns")) == turns_per_tenant[me]
            assert len(visible(conn, "tenants")) == 1
        conn.rollback()


@pytest.fixture
def two_tenants(db_url):
    with psycopg.connect(db_url, autocommit=True) as conn:
        mine, other = seed(conn, [2, 3])
    return mine, other


def test_service_role_sees_every_tenant(db_url, two_tenants):
    with psycopg.connect(db_url) as conn, conn.transaction():
        act_as(conn, "service_role", {"role": "service_role"})
        assert set(two_tenants) <= set(visible(conn, "call_turns"))


@pytest.mark.parametrize(
    "claims",
    [
        None,
        {"role": "authenticated", "sub": str(uuid.uuid4())},
        {"role": "authenticated", "tenant_id": "not-a-uuid"},
        {"role": "authenticated", "tenant_id": 42},
        {"role": "authenticated", "tenant_id": {"nested": True}},
        {"role": "authenticated", "app_metadata": "oops"},
        "",
    ],
    ids=["no-claims", "no-tenant", "not-a-uuid", "number", "object", "app-metadata-string", "empty"],
)
def test_a_missing_or_malformed_claim_returns_no_rows_without_error(db_url, two_tenants, claims):
    with psycopg.connect(db_url) as conn, conn.transaction():
        act_as(conn, "authenticated", claims)
        for table in TABLES:
            assert visible(conn, table) == [], table


def test_a_user_metadata_tenant_claim_grants_nothing(db_url, two_tenants):
    mine, _ = two_tenants
    with psycopg.connect(db_url) as conn, conn.transaction():
        act_as(conn, "authenticated", {"role": "authenticated", "user_metadata": {"tenant_id": mine}})
        for table in TABLES:
            assert visible(conn, table) == [], table


@pytest.mark.parametrize("table", list(TABLES))
def test_anon_is_refused_every_table(db_url, two_tenants, table):
    with psycopg.connect(db_url) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            with conn.transaction():
                act_as(conn, "anon", {"role": "anon"})
                visible(conn, table)


def test_a_tenant_may_update_its_own_agent_settings(db_url, two_tenants):
    mine, _ = two_tenants
    with psycopg.connect(db_url) as conn, conn.transaction():
        act_as(conn, "authenticated", claim_forms(mine)[0])
        updated = conn.execute("update public.tenant_agents set voice = 'marin' where tenant_id = %s", (mine,))
        assert updated.rowcount == 1
        conn.execute("set local role postgres")
        assert conn.execute("select voice from public.tenant_agents where tenant_id = %s", (mine,)).fetchone() == (
            "marin",
        )


def test_a_tenant_cannot_write_across_tenants(db_url, two_tenants):
    mine, other = two_tenants
    with psycopg.connect(db_url) as conn:
        with conn.transaction():
            act_as(conn, "authenticated", claim_forms(mine)[0])
            touched = conn.execute("update public.tenant_agents set voice = 'x' where tenant_id = %s", (other,))
            assert touched.rowcount == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # WITH CHECK: cannot move a row away
            with conn.transaction():
                act_as(conn, "authenticated", claim_forms(mine)[0])
                conn.execute("update public.tenant_agents set tenant_id = %s where tenant_id = %s", (other, mine))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            with conn.transaction():
                act_as(conn, "authenticated", claim_forms(mine)[0])
                conn.execute("insert into public.tenant_agents (tenant_id) values (%s)", (other,))


@pytest.mark.parametrize(
    "statement",
    [
        "insert into public.calls (call_sid, tenant_id) values ('CA" + "0" * 32 + "', %(me)s)",
        "update public.call_turns set text = 'x' where tenant_id = %(me)s",
        "delete from public.call_turns where tenant_id = %(me)s",
        "update public.calls set status = 'failed' where tenant_id = %(me)s",
        "insert into public.tenant_phone_numbers values ('+15550000000', %(me)s)",
        "delete from public.tenants where id = %(me)s",
    ],
)
def test_only_the_service_role_writes_calls_turns_numbers_and_tenants(db_url, two_tenants, statement):
    mine, _ = two_tenants
    with psycopg.connect(db_url) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            with conn.transaction():
                act_as(conn, "authenticated", claim_forms(mine)[0])
                conn.execute(statement, {"me": mine})


def test_a_turn_cannot_claim_a_tenant_other_than_its_calls(db_url, two_tenants):
    mine, other = two_tenants
    with psycopg.connect(db_url) as conn:
        sid = conn.execute("select call_sid from public.calls where tenant_id = %s", (mine,)).fetchone()[0]
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute(
                "insert into public.call_turns (tenant_id, call_sid, role, text, item_id, seq) "
                "values (%s, %s, 'user', 'x', 'item_x', 99)",
                (other, sid),
            )


def test_a_retried_turn_write_cannot_duplicate_a_turn(db_url, two_tenants):
    mine, _ = two_tenants
    with psycopg.connect(db_url) as conn:
        sid = conn.execute("select call_sid from public.calls where tenant_id = %s", (mine,)).fetchone()[0]
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                "insert into public.call_turns (tenant_id, call_sid, role, text, item_id, seq) "
                "values (%s, %s, 'user', 'again', 'item_0', 0)",
                (mine, sid),
            )
