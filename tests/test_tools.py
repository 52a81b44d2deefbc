"""Tenant tools in the database (supactl.database.tools and the tenant_tools migration): what is
refused, with which message, and what a tenant's users may see and change under RLS."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest

from supactl.database import tools
from supactl.database.tenants import TenantError, add_tenant
from supactl.database.tools import ToolError, ToolTarget

LOOKUP_SCHEMA = {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}


@pytest.fixture
def conn(db_url: str):
    with psycopg.connect(db_url, autocommit=True) as connection:
        yield connection


@pytest.fixture
def tenant(conn, request) -> str:
    return add_tenant(conn, f"tools-{uuid.uuid4()}").name


@pytest.fixture
def sql_functions(conn):
    conn.execute("create schema if not exists shop")
    conn.execute("create or replace function shop.lookup(args jsonb) returns jsonb language sql stable "
                 "as $$ select jsonb_build_object('id', args ->> 'order_id') $$")
    conn.execute("create or replace function shop.definer(args jsonb) returns jsonb language sql security definer "
                 "as $$ select '{}'::jsonb $$")
    conn.execute("create or replace function shop.text_result(args jsonb) returns text language sql as $$ select 'x' $$")


def test_each_kind_is_stored_with_its_target_and_listed(conn, tenant, sql_functions):
    tools.add_tool(conn, tenant, "lookup_order", "Look up an order", ToolTarget(url="https://api.example.com/t"),
                   parameters=LOOKUP_SCHEMA, timeout_ms=2000)
    tools.add_tool(conn, tenant, "orders_sql", "Orders from SQL", ToolTarget(sql="shop.lookup"))
    tools.add_tool(conn, tenant, "transfer", "Transfer to a person", ToolTarget(transfer_to="+1 (415) 555-0199"))
    tools.add_tool(conn, tenant, "end_call", "End the call", ToolTarget(end_call=True))
    listed = {t.name: (t.kind, t.target, t.timeout_ms) for t in tools.list_tools(conn, tenant)}
    assert listed == {
        "lookup_order": ("http", "https://api.example.com/t", 2000),
        "orders_sql": ("sql", "shop.lookup", 5000),
        "transfer": ("transfer", "+14155550199", 5000),
        "end_call": ("end_call", None, 5000),
    }
    assert tools.get_tool(conn, "lookup_order", tenant).parameters == LOOKUP_SCHEMA


@pytest.mark.parametrize("target, kwargs, message", [
    (ToolTarget(url="ftp://x.example"), {}, "not an http(s) URL"),
    (ToolTarget(url="https://user:pw@x.example/"), {}, "must not carry a user name or password"),
    (ToolTarget(sql="shop.missing"), {}, "shop.missing(jsonb) does not exist"),
    (ToolTarget(sql="shop.definer"), {}, "is SECURITY DEFINER"),
    (ToolTarget(sql="shop.text_result"), {}, "must return jsonb"),
    (ToolTarget(sql="Shop.Lookup;drop"), {}, "is not schema.function"),
    (ToolTarget(transfer_to="555-0199"), {}, "is not an E.164 phone number"),
    (ToolTarget(end_call=True), {"timeout_ms": 60000}, "outside 100-30000"),
    (ToolTarget(end_call=True), {"parameters": {"type": "array"}}, "must be a JSON Schema object"),
    (ToolTarget(end_call=True), {"parameters": {"type": "object", "properties": {"a": {"type": "nope"}}}},
     "not a valid JSON Schema"),
])
def test_bad_tools_are_refused_with_a_message_that_names_the_problem(conn, tenant, sql_functions, target, kwargs, message):
    with pytest.raises(TenantError) as caught:
        tools.add_tool(conn, tenant, "t", "A tool", target, **kwargs)
    assert message in caught.value.message
    assert tools.list_tools(conn, tenant) == []


def test_security_definer_only_when_allowed_and_names_and_duplicates(conn, tenant, sql_functions):
    tools.add_tool(conn, tenant, "definer", "Allowed", ToolTarget(sql="shop.definer"), allow_security_definer=True)
    with pytest.raises(ToolError, match="already has a tool named 'definer'"):
        tools.add_tool(conn, tenant, "definer", "Again", ToolTarget(end_call=True))
    with pytest.raises(ToolError, match="is not a tool name"):
        tools.add_tool(conn, tenant, "has space", "x", ToolTarget(end_call=True))
    with pytest.raises(TenantError, match="no tenant"):
        tools.add_tool(conn, "Nobody Inc", "x", "x", ToolTarget(end_call=True))


@pytest.mark.parametrize("target", [{}, {"url": "https://x.example", "end_call": True}])
def test_a_tool_has_exactly_one_target(target):
    with pytest.raises(ToolError, match="exactly one of --url, --sql, --transfer-to or --end-call"):
        ToolTarget(**target)


def test_parameters_inline_or_from_a_file(tmp_path):
    (tmp_path / "schema.json").write_text(json.dumps(LOOKUP_SCHEMA))
    assert tools.parse_parameters("@schema.json", base_dir=tmp_path) == LOOKUP_SCHEMA
    assert tools.parse_parameters(None) == {"type": "object", "properties": {}}
    with pytest.raises(ToolError, match="is not JSON"):
        tools.parse_parameters("{nope")
    with pytest.raises(ToolError, match="cannot read"):
        tools.parse_parameters("@missing.json", base_dir=tmp_path)


def test_the_database_refuses_a_definer_function_whoever_writes(conn, tenant, sql_functions):
    tenant_id = conn.execute("select id from public.tenants where name = %s", (tenant,)).fetchone()[0]
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="SECURITY DEFINER"):
        conn.execute("insert into public.tenant_tools (tenant_id, name, description, kind, sql_function) "
                     "values (%s, 'x', 'x', 'sql', 'shop.definer')", (tenant_id,))


def _as_tenant_user(conn, tenant_id: str) -> None:
    conn.execute("set local role authenticated")
    conn.execute("select set_config('request.jwt.claims', %s, true)",
                 (json.dumps({"role": "authenticated", "tenant_id": str(tenant_id)}),))


def test_a_tenant_user_reads_and_edits_only_its_own_tools_and_never_the_signing_key(db_url, conn, sql_functions):
    mine, theirs = add_tenant(conn, "tools-rls-mine"), add_tenant(conn, "tools-rls-theirs")
    tools.add_tool(conn, mine.name, "mine", "Mine", ToolTarget(end_call=True))
    tools.add_tool(conn, theirs.name, "theirs", "Theirs", ToolTarget(end_call=True))
    key = tools.signing_key(conn, mine.name)
    assert len(key) == 64 and tools.signing_key(conn, mine.name) == key
    assert tools.signing_key(conn, theirs.name) != key
    with psycopg.connect(db_url) as user:
        _as_tenant_user(user, mine.id)
        assert [r[0] for r in user.execute("select name from public.tenant_tools").fetchall()] == ["mine"]
        assert user.execute("update public.tenant_tools set description = 'x' where name = 'theirs'").rowcount == 0
        assert user.execute("delete from public.tenant_tools where name = 'theirs'").rowcount == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            user.execute("select signing_key from public.tenant_tool_keys")
        user.rollback()
        _as_tenant_user(user, mine.id)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            user.execute("update public.tenant_tools set allow_security_definer = true")
        user.rollback()
        _as_tenant_user(user, mine.id)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # RLS: not for another tenant
            user.execute("insert into public.tenant_tools (tenant_id, name, description, kind) "
                         "values (%s, 'sneaky', 'x', 'end_call')", (theirs.id,))
    assert {t.name for t in tools.list_tools(conn)} >= {"mine", "theirs"}


def test_the_tools_commands_add_list_remove_and_show_the_key(db_url, conn, tenant):
    from typer.testing import CliRunner

    from supactl.cli import app

    def run(*args: str):
        return CliRunner().invoke(app, ["tools", *args, "--db-url", db_url])

    added = run("add", "lookup", "--tenant", tenant, "--description", "Look up", "--url", "https://t.example/x",
                "--parameters", json.dumps(LOOKUP_SCHEMA), "--json")
    assert added.exit_code == 0, added.output
    assert json.loads(added.stdout)["tool"]["target"] == "https://t.example/x"
    listed = json.loads(run("list", "--tenant", tenant, "--json").stdout)
    assert [t["name"] for t in listed["tools"]] == ["lookup"]
    key = run("signing-key", "--tenant", tenant).stdout.strip()
    assert key == tools.signing_key(conn, tenant)
    assert key not in run("list", "--tenant", tenant).stdout
    bad = run("add", "x", "--tenant", tenant, "--description", "x", "--url", "ftp://nope", "--json")
    assert bad.exit_code == 1 and json.loads(bad.stdout)["ok"] is False
    both = run("add", "x", "--tenant", tenant, "--description", "x", "--end-call", "--transfer-to", "+14155550100")
    assert both.exit_code == 1 and "exactly one of" in both.output
    assert run("remove", "lookup", "--tenant", tenant).exit_code == 0
    assert run("remove", "lookup", "--tenant", tenant).exit_code == 1


def test_tool_calls_show_between_the_turns_and_only_to_their_tenant(db_url, conn, tenant):
    from supactl.database.call_log import PostgresCallLog, transcript_lines

    tenant_id, other = (str(conn.execute("select id from public.tenants where name = %s", (name,)).fetchone()[0])
                        for name in (tenant, add_tenant(conn, f"other-{uuid.uuid4()}").name))
    sid = "CA" + uuid.uuid4().hex
    conn.execute("insert into public.calls (call_sid, tenant_id, transfer_to, transfer_outcome) "
                 "values (%s, %s, '+14155550199', 'no-answer')", (sid, tenant_id))
    for seq, role, text in ((0, "assistant", "Hello"), (1, "user", "Where is my order?"), (3, "assistant", "Shipped")):
        conn.execute("insert into public.call_turns (tenant_id, call_sid, role, text, item_id, seq) "
                     "values (%s, %s, %s, %s, %s, %s)", (tenant_id, sid, role, text, f"item_{seq}", seq))
    conn.execute("insert into public.call_tool_calls (tenant_id, call_sid, seq, call_id, name, arguments, output, "
                 "status, duration_ms) values (%s, %s, 2, 'call_1', 'lookup', '{\"order_id\": \"7\"}', "
                 "'{\"status\": \"shipped\"}', 'ok', 42)", (tenant_id, sid))
    call, turns = PostgresCallLog(db_url).call_with_turns(sid)
    assert [t.role for t in turns] == ["assistant", "user", "tool", "assistant"]
    lines = transcript_lines(turns)
    assert lines[2]["tool"] == {"name": "lookup", "arguments": {"order_id": "7"}, "output": '{"status": "shipped"}',
                                "status": "ok", "duration_ms": 42}
    assert (call.transfer_to, call.transfer_outcome) == ("+14155550199", "no-answer")
    with psycopg.connect(db_url) as user:
        for who, seen in ((tenant_id, 1), (other, 0)):
            _as_tenant_user(user, who)
            assert user.execute("select count(*) from public.call_tool_calls where call_sid = %s",
                                (sid,)).fetchone()[0] == seen
            user.rollback()


def test_the_dev_demo_tools_are_idempotent_and_the_lookup_cannot_see_the_neighbours_order(db_url, conn, tenant):
    from supactl.dev_stack.demo_tools import add_demo_tools

    tenant_id = str(conn.execute("select id from public.tenants where name = %s", (tenant,)).fetchone()[0])
    assert add_demo_tools(conn, tenant_id) == ["lookup_order", "transfer_to_human", "end_call"]
    assert add_demo_tools(conn, tenant_id) == []
    with psycopg.connect(db_url) as user:
        _as_tenant_user(user, tenant_id)
        mine = user.execute("select demo.lookup_order('{\"order_id\": \"1001\"}')").fetchone()[0]
        theirs = user.execute("select demo.lookup_order('{\"order_id\": \"2002\"}')").fetchone()[0]
    assert mine == {"order_id": "1001", "status": "shipped"}
    assert theirs == {"error": "no order 2002 for this caller"}
    assert conn.execute("select count(*) from demo.orders where order_id = '2002'").fetchone()[0] == 1
