"""Every privilege anon and authenticated hold on the project's schema, against the intended set.

Supabase grants both API roles everything on new objects in public by default; a privilege the
migrations forget to revoke is an attack surface (the identity sequence of call_turns was one:
setval() to its maximum stopped every tenant's turns from being stored).
"""

from __future__ import annotations

import json

import psycopg
import pytest

# (grantee, object, privilege): everything the API roles may do, and nothing else. PUBLIC counts
# because every role, anon included, inherits what PUBLIC holds.
TENANT_TABLES = ("call_recordings", "call_tool_calls", "call_turns", "calls", "tenant_agents", "tenant_phone_numbers", "tenant_tools", "tenants")
AGENT_SETTING_COLUMNS = ("greeting", "instructions", "model", "transcription_model", "turn_detection", "updated_at", "voice",
                         # outbound calls and recordings (20261204090100_outbound_calls.sql)
                         "outbound_greeting", "record_calls", "voicemail_action", "voicemail_message")
# allow_security_definer is missing on purpose: only the service role lets a tool bypass RLS.
TOOL_COLUMNS = ("description", "enabled", "http_url", "kind", "name", "parameters", "sql_function", "timeout_ms",
                "transfer_to", "updated_at")
INTENDED = (
    # USAGE on the schema only lets a role name what it holds privileges on; PUBLIC has it by
    # Postgres' own default (pg_database_owner's schema), and Supabase keeps it.
    {("PUBLIC", "schema public", "USAGE"), ("anon", "schema public", "USAGE"), ("authenticated", "schema public", "USAGE")}
    | {("authenticated", f"table {table}", "SELECT") for table in TENANT_TABLES}
    | {("authenticated", f"column tenant_agents.{column}", "INSERT") for column in ("tenant_id", *AGENT_SETTING_COLUMNS)}
    | {("authenticated", f"column tenant_agents.{column}", "UPDATE") for column in AGENT_SETTING_COLUMNS}
    | {("authenticated", f"column tenant_tools.{column}", "INSERT") for column in ("tenant_id", *TOOL_COLUMNS)}
    | {("authenticated", f"column tenant_tools.{column}", "UPDATE") for column in TOOL_COLUMNS}
    | {("authenticated", "table tenant_tools", "DELETE")}
    | {("authenticated", "function current_tenant_id()", "EXECUTE")}
)

INVENTORY = """
with api_roles(oid, name) as (
  select 0::oid, 'PUBLIC'
  union all select oid, rolname from pg_roles where rolname in ('anon', 'authenticated')
),
grants(object, acl) as (
  select 'schema public', (aclexplode(nspacl)) from pg_namespace where nspname = 'public'
  union all
  select case c.relkind when 'S' then 'sequence ' else 'table ' end || c.relname, aclexplode(c.relacl)
  from pg_class c where c.relnamespace = 'public'::regnamespace and c.relacl is not null
  union all
  select 'column ' || c.relname || '.' || a.attname, aclexplode(a.attacl)
  from pg_attribute a join pg_class c on c.oid = a.attrelid
  where c.relnamespace = 'public'::regnamespace and a.attacl is not null and not a.attisdropped
  union all
  -- A function with no ACL of its own has the default one: EXECUTE for PUBLIC.
  select 'function ' || regexp_replace(p.oid::regprocedure::text, '^public\\.', ''),
         aclexplode(coalesce(p.proacl, acldefault('f', p.proowner)))
  from pg_proc p where p.pronamespace = 'public'::regnamespace
  union all
  select 'default privileges on new ' || case d.defaclobjtype when 'r' then 'tables' when 'S' then 'sequences'
         when 'f' then 'functions' else d.defaclobjtype::text end, aclexplode(d.defaclacl)
  from pg_default_acl d where d.defaclnamespace = 'public'::regnamespace
)
select api_roles.name, grants.object, (grants.acl).privilege_type
from grants join api_roles on api_roles.oid = (grants.acl).grantee
"""


def api_role_privileges(url: str) -> set[tuple[str, str, str]]:
    with psycopg.connect(url) as conn:
        return {tuple(row) for row in conn.execute(INVENTORY).fetchall()}  # type: ignore[misc]


def test_anon_and_authenticated_hold_exactly_the_intended_privileges(db_url: str) -> None:
    held = api_role_privileges(db_url)
    assert held - INTENDED == set(), "privileges the API roles must not hold"
    assert INTENDED - held == set(), "privileges the API needs but lacks"


def test_the_inventory_sees_supabase_default_grants_before_the_migrations(empty_db_url_with_tables: str) -> None:
    # Without the revokes, the inventory reports what Supabase's defaults hand out; a query that
    # saw nothing would pass the test above for the wrong reason.
    held = api_role_privileges(empty_db_url_with_tables)
    assert ("authenticated", "sequence probe_id_seq", "UPDATE") in held
    assert ("anon", "function probe()", "EXECUTE") in held
    assert ("anon", "default privileges on new sequences", "UPDATE") in held


@pytest.fixture
def empty_db_url_with_tables(fresh_db_url: str) -> str:
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute("create table public.probe (id bigint generated always as identity primary key)")
        conn.execute("create function public.probe() returns int language sql as 'select 1'")
    return fresh_db_url


def as_api_role(conn: psycopg.Connection, role: str, claims: dict | None) -> None:
    """What PostgREST does at the start of each request's transaction."""
    conn.execute(f"set local role {role}")
    if claims is not None:
        conn.execute("select set_config('request.jwt.claims', %s, true)", (json.dumps(claims),))


@pytest.mark.parametrize("role", ["anon", "authenticated"])
def test_api_roles_cannot_move_the_turn_id_sequence_and_turns_keep_being_stored(db_url: str, role: str) -> None:
    with psycopg.connect(db_url) as conn:
        tenant_id = conn.execute("insert into public.tenants (name) values (%s) returning id", (f"seq-{role}",)).fetchone()[0]  # type: ignore[index]
        call_sid = "CA" + ("a" if role == "anon" else "b") * 32
        conn.execute(
            "insert into public.calls (call_sid, tenant_id, to_number) values (%s, %s, '+14155550100')",
            (call_sid, tenant_id),
        )
        conn.commit()
        for attack in (
            "select setval('public.call_turns_id_seq', 9223372036854775807)",
            "select nextval('public.call_turns_id_seq')",
        ):
            as_api_role(conn, role, {"role": role, "tenant_id": str(tenant_id)})
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(attack)
            conn.rollback()
        # The bridge's insert (as the owner here; service_role on hosted) still gets ids.
        for seq in range(3):
            conn.execute(
                "insert into public.call_turns (tenant_id, call_sid, role, text, item_id, seq) values (%s, %s, 'user', 'hi', %s, %s)",
                (tenant_id, call_sid, f"item_{seq}", seq),
            )
        conn.commit()
        stored = conn.execute("select count(*) from public.call_turns where call_sid = %s", (call_sid,)).fetchone()[0]  # type: ignore[index]
        assert stored == 3
