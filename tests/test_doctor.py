"""`supactl doctor` finds each broken link, one at a time, and names the command that fixes it."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from supactl.cli import app
from supactl.cloud import doctor
from supactl.cloud import up
from supactl.cloud import management_api as api
from supactl.cloud.http_client import RetryPolicy
from supactl.cloud.twilio_api import TwilioClient
from supactl.database.connection import connect
from supactl.database.migrations import push
from supactl.database.tenants import add_number, add_tenant
from tests.contract_servers.stack import NUMBER, cloud_stack
from tests.contract_servers.supabase_auth import SupabaseAuthServer

NO_WAIT = RetryPolicy(sleep=lambda s: None)


@pytest.fixture
def stack(pg_server, tmp_path):
    """A project brought fully up, its number owned by a tenant in the database."""
    with cloud_stack(pg_server, tmp_path, numbers_variable=False) as running:
        push(running.db_url, running.project / "supabase" / "migrations")
        with connect(running.db_url, autocommit=True) as conn:
            add_tenant(conn, "acme")
            add_number(conn, NUMBER, "acme")
        inputs = up.gather(running.project, environ=running.environ)
        with api.management_client(inputs.settings, retry=NO_WAIT) as client, \
                TwilioClient.from_config(project_dir=running.project, environ=running.environ, retry=NO_WAIT) as tw:
            up.run(inputs, client, tw)
        yield running


def checks(stack, environ=None):
    """Doctor's findings; every test that runs it this way also proves it sent no write."""
    stack.clear_requests()
    found = doctor.run(doctor.DoctorInputs(stack.project, environ or stack.environ, retry=NO_WAIT))
    stack.assert_only_reads()
    return {c.name: c for c in found}


def failing(result):
    return {name: c for name, c in result.items() if c.status == "fail"}


def test_a_healthy_project_passes_every_check(stack):
    result = checks(stack)
    assert {name: c.status for name, c in result.items()} == {
        "access token": "pass", "project active": "pass", "migrations": "pass", "secrets": "pass",
        "function": "pass", "webhook": "pass", f"number {NUMBER}": "pass"}
    assert "<Connect><Stream>" in result["webhook"].detail
    # The signed test call and the unsigned one both reached the function; only the first passed.
    assert [r.status for r in stack.webhook.requests] == [200, 400]


def test_doctor_only_reads_from_supabase_twilio_and_auth_admin(stack):
    with connect(stack.db_url, autocommit=True) as conn:
        tenant = conn.execute("select id::text from public.tenants where name = 'acme'").fetchone()[0]
        conn.execute("insert into public.calls (call_sid, tenant_id) values (%s, %s)", ("CA" + "0" * 32, tenant))
    with SupabaseAuthServer() as auth:
        auth.add_user("ana@example.com", {"tenant_id": tenant})
        environ = stack.environ | {"SUPABASE_AUTH_URL": auth.base_url,
                                   "SUPABASE_SERVICE_ROLE_KEY": auth.service_role_key}
        result = checks(stack, environ)
        assert result["members"].status == "pass"
        assert auth.calls() and stack.api.calls() and stack.twilio.calls()  # each service was asked
        auth.assert_only_reads()


def test_detects_an_unapplied_migration(stack):
    (stack.project / "supabase/migrations/29990101000000_later.sql").write_text("select 1;")
    broken = failing(checks(stack))
    assert list(broken) == ["migrations"]
    assert "29990101000000_later.sql" in broken["migrations"].detail
    assert broken["migrations"].fix == "supactl db push"


def test_detects_a_missing_secret(stack):
    del stack.api.secrets["OPENAI_API_KEY"]
    broken = failing(checks(stack))
    assert list(broken) == ["secrets"]
    assert broken["secrets"].fix == "supactl secrets set OPENAI_API_KEY=…"


def test_detects_a_secret_that_differs_from_the_local_value(stack):
    stack.api.put_secret("TWILIO_AUTH_TOKEN", "f" * 32)
    broken = failing(checks(stack))
    # The function now checks signatures with another token, so the test call is refused too.
    assert list(broken) == ["secrets", "webhook"]
    assert "TWILIO_AUTH_TOKEN" in broken["secrets"].detail
    assert broken["webhook"].fix.startswith("supactl secrets set TWILIO_AUTH_TOKEN=")


def test_detects_verify_jwt_turned_on(stack):
    stack.api.functions["twilio-voice"].verify_jwt = True
    result = checks(stack)
    assert list(failing(result)) == ["function"]
    assert "verify_jwt on" in result["function"].detail
    assert result["function"].fix.startswith("supactl deploy")
    assert result["webhook"].status == "skip"


def test_detects_a_number_pointing_elsewhere(stack):
    stack.twilio.number(NUMBER)["voice_url"] = "https://old.example.com/voice"
    broken = failing(checks(stack))
    assert list(broken) == [f"number {NUMBER}"]
    assert "old.example.com" in broken[f"number {NUMBER}"].detail
    assert broken[f"number {NUMBER}"].fix == f"supactl twilio link-number {NUMBER}"


def test_detects_a_number_routed_to_a_voice_application(stack):
    stack.twilio.number(NUMBER)["voice_application_sid"] = "AP" + "1" * 32
    broken = failing(checks(stack))
    assert broken[f"number {NUMBER}"].fix == f"supactl twilio link-number {NUMBER} --force"


def test_detects_a_function_that_was_never_deployed(stack):
    del stack.api.functions["twilio-voice"]
    result = checks(stack)
    assert list(failing(result)) == ["function"]
    assert result["function"].fix == "supactl deploy --function twilio-voice"


def test_detects_an_inactive_project(stack):
    stack.api.project_status = "INACTIVE"
    broken = failing(checks(stack))
    assert list(broken) == ["project active"]
    assert f"dashboard/project/{stack.api.ref}" in broken["project active"].fix


def test_a_refused_token_fails_its_check_and_skips_the_ones_that_need_it(stack):
    result = checks(stack, stack.environ | {"SUPABASE_ACCESS_TOKEN": "sbp_" + "a" * 40})
    assert result["access token"].status == "fail"
    assert "dashboard/account/tokens" in result["access token"].fix
    assert [result[n].status for n in ("project active", "secrets", "function", "webhook")] == ["skip"] * 4
    assert result["migrations"].status == "pass"


def test_command_exits_non_zero_and_prints_each_fix(stack):
    stack.api.functions["twilio-voice"].verify_jwt = True
    stack.clear_requests()
    runner = CliRunner()
    result = runner.invoke(app, ["doctor", "--workdir", str(stack.project)], env=stack.environ)
    assert result.exit_code == 5
    assert "✗ function" in result.output and "fix: supactl deploy --function twilio-voice" in result.output
    as_json = runner.invoke(app, ["doctor", "--workdir", str(stack.project), "--json"], env=stack.environ)
    report = json.loads(as_json.stdout)
    assert as_json.exit_code == 5 and report["ok"] is False
    assert [c["name"] for c in report["checks"] if c["status"] == "fail"] == ["function"]
    stack.assert_only_reads()
