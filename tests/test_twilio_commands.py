"""`supactl twilio link-number` and `supactl twilio numbers` end to end: the CLI against the
Twilio contract server and, for --tenant, a real Postgres."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from typer.testing import CliRunner

from supactl.cli import app
from supactl.database import tenants
from supactl.database.connection import connect
from tests.contract_servers.twilio import TwilioContractServer

REF = "abcdefghijklmnopqrst"
FUNCTION_URL = f"https://{REF}.supabase.co/functions/v1/twilio-voice"
APP_SID = "AP" + "3" * 32


@pytest.fixture
def run(twilio: TwilioContractServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # The project folder is a fresh temp dir, so no developer's .env leaks into the test.
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: str, **env: str | None):
        environ = {"TWILIO_ACCOUNT_SID": twilio.account_sid, "TWILIO_AUTH_TOKEN": twilio.auth_token,
                   "TWILIO_API_URL": twilio.base_url, "SUPABASE_PROJECT_REF": REF,
                   "TWILIO_API_KEY": None, "TWILIO_API_SECRET": None, "PUBLIC_URL": None,
                   "SUPABASE_PROJECT_ID": None, "SUPABASE_DB_URL": None, **env}
        return runner.invoke(app, list(args), env=environ)

    return invoke


def tenant_of(db_url: str, number: str) -> str | None:
    with connect(db_url, autocommit=True) as conn:
        row = conn.execute("select t.name from public.tenant_phone_numbers n join public.tenants t "
                           "on t.id = n.tenant_id where n.phone_number = %s", (number,)).fetchone()
    return row[0] if row else None


def create_tenant(db_url: str, name: str) -> None:
    with connect(db_url, autocommit=True) as conn:
        tenants.add_tenant(conn, name)


def test_link_number_points_the_number_at_the_projects_function(run, twilio):
    sid = twilio.add_number("+14155550100", voice_url="https://old.example/voice")
    first = run("twilio", "link-number", "+1 (415) 555-0100")
    assert first.exit_code == 0, first.output
    assert f"linked +14155550100 -> POST {FUNCTION_URL}" in first.stdout
    assert twilio.numbers[sid]["voice_url"] == FUNCTION_URL
    twilio.clear_requests()
    second = run("twilio", "link-number", "+14155550100")
    assert second.exit_code == 0 and "unchanged: +14155550100" in second.stdout
    twilio.assert_only_reads()


def test_link_number_uses_the_function_url_flag_over_the_project_ref(run, twilio):
    sid = twilio.add_number("+14155550101")
    result = run("twilio", "link-number", "+14155550101", "--function-url", "https://edge.example/twilio-voice")
    assert result.exit_code == 0, result.output
    assert twilio.numbers[sid]["voice_url"] == "https://edge.example/twilio-voice"


def test_link_number_with_tenant_records_the_number(run, twilio, db_url):
    create_tenant(db_url, "Acme Dental")
    twilio.add_number("+14155550102")
    result = run("twilio", "link-number", "+14155550102", "--tenant", "Acme Dental", "--db-url", db_url, "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["changed"] is True and body["voice_url"] == FUNCTION_URL
    assert body["tenant"]["name"] == "Acme Dental" and body["tenant"]["changed"] is True
    assert tenant_of(db_url, "+14155550102") == "Acme Dental"
    again = run("twilio", "link-number", "+14155550102", "--tenant", "Acme Dental", "--db-url", db_url)
    assert again.exit_code == 0, again.output
    assert "unchanged: +14155550102 -> tenant Acme Dental" in again.stdout


def test_link_number_with_unknown_tenant_touches_neither_twilio_nor_the_database(run, twilio, db_url):
    twilio.add_number("+14155550103")
    result = run("twilio", "link-number", "+14155550103", "--tenant", "Nobody", "--db-url", db_url)
    assert result.exit_code == 1
    assert "no tenant 'Nobody'" in result.stderr
    assert twilio.requests == []
    assert tenant_of(db_url, "+14155550103") is None


def test_refused_link_records_no_tenant_number(run, twilio, db_url):
    create_tenant(db_url, "Routed Elsewhere Inc")
    sid = twilio.add_number("+14155550104", voice_application_sid=APP_SID)
    result = run("twilio", "link-number", "+14155550104", "--tenant", "Routed Elsewhere Inc", "--db-url", db_url)
    assert result.exit_code == 1
    assert f"voice application {APP_SID}" in result.stderr and "--force" in result.stderr
    assert tenant_of(db_url, "+14155550104") is None
    assert twilio.numbers[sid]["voice_url"] is None

    forced = run("twilio", "link-number", "+14155550104", "--tenant", "Routed Elsewhere Inc",
                 "--db-url", db_url, "--force")
    assert forced.exit_code == 0, forced.output
    assert f"cleared voice application {APP_SID} from +14155550104" in forced.stdout
    assert tenant_of(db_url, "+14155550104") == "Routed Elsewhere Inc"
    assert not twilio.numbers[sid]["voice_application_sid"]


def test_tenant_without_a_database_url_fails_before_twilio(run, twilio):
    twilio.add_number("+14155550105")
    result = run("twilio", "link-number", "+14155550105", "--tenant", "Acme Dental")
    assert result.exit_code == 2
    assert "SUPABASE_DB_URL" in result.stderr
    assert twilio.requests == []


def test_link_number_refuses_what_is_not_a_phone_number(run, twilio):
    result = run("twilio", "link-number", "415-CALL-NOW")
    assert result.exit_code == 1 and "E.164" in result.stderr
    assert twilio.requests == []


def test_link_number_names_a_number_the_account_does_not_have(run, twilio):
    result = run("twilio", "link-number", "+14155550199")
    assert result.exit_code == 4
    assert f"+14155550199 is not a phone number of Twilio account {twilio.account_sid}" in result.stderr


def test_missing_credentials_name_the_variable_and_exit_2(run, twilio):
    result = run("twilio", "numbers", TWILIO_AUTH_TOKEN=None)
    assert result.exit_code == 2
    assert "TWILIO_AUTH_TOKEN is not set" in result.stderr and "console.twilio.com" in result.stderr
    assert "Traceback" not in result.output
    assert twilio.requests == []


def test_numbers_json_says_which_numbers_reach_the_function(run, twilio):
    twilio.add_number("+14155550110", voice_url=FUNCTION_URL)
    twilio.add_number("+14155550111", voice_url="https://elsewhere.example/voice")
    twilio.add_number("+14155550112", voice_url=FUNCTION_URL, voice_application_sid=APP_SID)
    result = run("twilio", "numbers", "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["function_url"] == FUNCTION_URL
    assert {n["phone_number"]: n["reaches_function"] for n in body["numbers"]} == {
        "+14155550110": True, "+14155550111": False, "+14155550112": False}
    assert body["numbers"][2]["voice_application_sid"] == APP_SID
    twilio.assert_only_reads()


def test_numbers_table_without_a_project_still_lists(run, twilio):
    twilio.add_number("+14155550120", voice_url="https://elsewhere.example/voice")
    result = run("twilio", "numbers", SUPABASE_PROJECT_REF=None)
    assert result.exit_code == 0, result.output
    assert "+14155550120" in result.stdout and "elsewhere.example" in result.stdout
    assert "cannot tell which numbers reach the function" in result.stderr
    twilio.assert_only_reads()


def test_no_secret_in_any_command_output(run, twilio):
    twilio.add_number("+14155550130", voice_application_sid=APP_SID)
    wrong_token = secrets.token_hex(16)
    key, key_secret = twilio.add_api_key()
    results = [
        run("twilio", "numbers", "--verbose"),
        run("twilio", "numbers", "--json"),
        run("twilio", "link-number", "+14155550130"),
        run("twilio", "link-number", "+14155550130", "--force", "--json"),
        run("twilio", "numbers", "-v", TWILIO_AUTH_TOKEN=wrong_token),
        run("twilio", "numbers", TWILIO_API_KEY=key, TWILIO_API_SECRET=key_secret[::-1]),
        run("twilio", "link-number", "+14155550130", TWILIO_API_KEY=key, TWILIO_API_SECRET=key_secret),
    ]
    assert [r.exit_code for r in results] == [0, 0, 1, 0, 4, 4, 0]
    assert "-> GET " in results[0].stderr and "<- 401 " in results[4].stderr
    everything = "\n".join(r.stdout + r.stderr for r in results)
    for secret in (twilio.auth_token, wrong_token, key_secret, key_secret[::-1]):
        assert secret not in everything
