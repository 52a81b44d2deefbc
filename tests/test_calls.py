"""The call log, read as the database owner or as a tenant's JWT under row-level security."""

from __future__ import annotations

import json
import time

import pytest
from typer.testing import CliRunner

from supactl.cli import app
from supactl.database.call_log import CallNotFound, PostgresCallLog
from supactl.database.connection import connect
from supactl.database.jwt_tokens import claims_of, sign_hs256, tenant_token
from supactl.errors import ConfigError

SECRET = "test-jwt-secret-with-at-least-32-characters"
SID_A = "CA" + "a" * 32
SID_B = "CA" + "b" * 32


@pytest.fixture(scope="module")
def tenants(db_url):
    with connect(db_url) as conn:
        ids = {}
        for name in ("Acme", "Globex"):
            ids[name] = conn.execute("insert into tenants (name) values (%s) returning id::text", (name,)).fetchone()[0]
        for sid, tenant in ((SID_A, "Acme"), (SID_B, "Globex")):
            conn.execute("insert into calls (call_sid, tenant_id, from_number, to_number, status, end_reason) "
                         "values (%s, %s, '+15555550123', '+15555550100', 'completed', 'caller_hung_up')",
                         (sid, ids[tenant]))
        for seq, role, text in ((1, "assistant", "Hello"), (0, "user", "Hi there"), (2, "user", "Bye")):
            conn.execute("insert into call_turns (tenant_id, call_sid, role, text, item_id, seq, interrupted) "
                         "values (%s, %s, %s, %s, %s, %s, %s)",
                         (ids["Acme"], SID_A, role, text, f"item_{seq}", seq, role == "assistant"))
    return ids


def test_owner_sees_every_call_with_tenant_names_and_can_filter(db_url, tenants):
    log = PostgresCallLog(db_url)
    assert {c.call_sid: c.tenant_name for c in log.list_calls()} == {SID_A: "Acme", SID_B: "Globex"}
    assert [c.call_sid for c in log.list_calls("Globex")] == [SID_B]
    assert [c.call_sid for c in log.list_calls(tenants["Acme"])] == [SID_A]


def test_transcript_is_in_conversation_order(db_url, tenants):
    call, turns = PostgresCallLog(db_url).call_with_turns(SID_A)
    assert call.status == "completed"
    assert [(t.seq, t.role, t.text, t.interrupted) for t in turns] == [
        (0, "user", "Hi there", False), (1, "assistant", "Hello", True), (2, "user", "Bye", False)]


def test_a_tenant_jwt_sees_exactly_its_own_calls(db_url, tenants):
    token = tenant_token(tenants["Acme"], SECRET, subject="00000000-0000-0000-0000-000000000001")
    log = PostgresCallLog(db_url, token, SECRET)
    assert [c.call_sid for c in log.list_calls()] == [SID_A]
    assert len(log.call_with_turns(SID_A)[1]) == 3
    with pytest.raises(CallNotFound) as hidden:
        log.call_with_turns(SID_B)
    assert "another tenant" in hidden.value.hint


def test_a_jwt_without_tenant_sees_nothing(db_url, tenants):
    token = sign_hs256({"role": "authenticated", "sub": "x", "exp": time.time() + 60}, SECRET)
    assert PostgresCallLog(db_url, token).list_calls() == []


def test_forged_expired_and_odd_role_tokens_are_refused(tenants):
    good = tenant_token(tenants["Acme"], SECRET, subject="s")
    with pytest.raises(ConfigError, match="does not verify"):
        claims_of(good, "another-secret")
    with pytest.raises(ConfigError, match="expired"):
        claims_of(tenant_token(tenants["Acme"], SECRET, subject="s", now=time.time() - 10**7))
    with pytest.raises(ConfigError, match="role"):
        claims_of(sign_hs256({"role": "postgres"}, SECRET))
    with pytest.raises(ConfigError, match="malformed"):
        claims_of("not-a-jwt")


def test_cli_lists_and_shows_as_the_tenant(db_url, tenants):
    token = tenant_token(tenants["Acme"], SECRET, subject="s")
    runner = CliRunner()
    listed = runner.invoke(app, ["calls", "list", "--db-url", db_url, "--jwt", token, "--json"])
    assert listed.exit_code == 0, listed.output
    assert SID_A in listed.output and SID_B not in listed.output
    shown = runner.invoke(app, ["calls", "show", SID_A, "--db-url", db_url, "--jwt", token])
    assert shown.exit_code == 0, shown.output
    assert shown.output.index("Hi there") < shown.output.index("Hello") < shown.output.index("Bye")
    hidden = runner.invoke(app, ["calls", "show", SID_B, "--db-url", db_url, "--jwt", token])
    assert hidden.exit_code == 1 and f"no call {SID_B}" in hidden.output
    assert token not in hidden.output


@pytest.fixture(scope="module")
def postgrest(db_url, tenants):
    from tests.contract_servers.postgrest import PostgrestServer

    with PostgrestServer(db_url, SECRET) as server:
        yield server


def test_through_the_supabase_api_a_tenant_jwt_sees_only_its_calls(postgrest, tenants):
    from supactl.database.call_log import SupabaseCallLog

    anon_key = sign_hs256({"role": "anon", "exp": time.time() + 60}, SECRET)
    token = tenant_token(tenants["Acme"], SECRET, subject="s")
    log = SupabaseCallLog(postgrest.base_url, anon_key, token)
    calls = log.list_calls()
    assert [(c.call_sid, c.tenant_name) for c in calls] == [(SID_A, "Acme")]
    assert [c.call_sid for c in log.list_calls("Acme")] == [SID_A]
    call, turns = log.call_with_turns(SID_A)
    assert [t.text for t in turns] == ["Hi there", "Hello", "Bye"]
    with pytest.raises(CallNotFound):
        log.call_with_turns(SID_B)
    # Without a user JWT the anon key sees nothing: the tables are not granted to anon.
    from supactl.errors import SupactlError

    with pytest.raises(SupactlError, match="refused"):
        SupabaseCallLog(postgrest.base_url, anon_key).list_calls()


def test_cli_refuses_an_unknown_tenant_like_numbers_list(db_url, tenants):
    result = CliRunner().invoke(app, ["calls", "list", "--db-url", db_url, "--tenant", "Nope", "--json"])
    assert result.exit_code == 1 and json.loads(result.stdout)["ok"] is False
    assert "Nope" in json.loads(result.stdout)["error"]


def test_cli_tables_keep_full_ids_when_piped(db_url, tenants):
    listed = CliRunner().invoke(app, ["calls", "list", "--db-url", db_url])
    assert listed.exit_code == 0 and SID_A in listed.stdout and "…" not in listed.stdout
    from supactl.commands.tables import print_table  # on a narrow terminal a cell folds, never cut
    import io
    from unittest import mock

    from rich.console import Console

    narrow = Console(file=io.StringIO(), width=40, force_terminal=True)
    with mock.patch("supactl.commands.tables.console", return_value=narrow):
        print_table(("Call", "To"), [(SID_A, "+14155550100")])
    text = narrow.file.getvalue()  # type: ignore[attr-defined]
    assert "…" not in text and "+141555" in "".join(text.split())
