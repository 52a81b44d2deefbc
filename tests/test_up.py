"""`supactl up` against the contract servers and a real Postgres: the first run does every step,
the second changes nothing, a dry run only reads, and no secret ever reaches the output."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from supactl.cli import app
from supactl.cloud import management_api as api
from supactl.cloud import up
from supactl.cloud.http_client import RetryPolicy
from supactl.cloud.twilio_api import TwilioClient
from supactl.database.connection import connect
from tests.contract_servers.local_http import is_read
from tests.contract_servers.stack import NUMBER, cloud_stack

NO_WAIT = RetryPolicy(sleep=lambda s: None)


@pytest.fixture
def stack(pg_server, tmp_path):
    with cloud_stack(pg_server, tmp_path) as running:
        yield running


def run_up(stack, dry_run=False, environ=None):
    environ = environ or stack.environ
    inputs = up.gather(stack.project, environ=environ)
    with api.management_client(inputs.settings, retry=NO_WAIT) as client, \
            TwilioClient.from_config(project_dir=stack.project, environ=environ, retry=NO_WAIT) as twilio:
        return {r.step: r for r in up.run(inputs, client, twilio, dry_run=dry_run)}


def management_calls(stack):
    prefix = f"/v1/projects/{stack.api.ref}"
    return [(m, p.removeprefix(prefix)) for m, p in stack.api.calls()]


def twilio_calls(stack):
    prefix = f"/2010-04-01/Accounts/{stack.twilio.account_sid}/IncomingPhoneNumbers"
    return [(m, p.removeprefix(prefix)) for m, p in stack.twilio.calls()]


def applied_versions(db_url):
    with connect(db_url, autocommit=True) as conn:
        return [r[0] for r in conn.execute("select version from supabase_migrations.schema_migrations order by 1")]


def test_first_run_does_every_step_and_second_run_changes_nothing(stack):
    first = run_up(stack)
    assert {step: r.status for step, r in first.items()} == {
        "database": "changed", "secrets": "changed", "function": "changed", f"number {NUMBER}": "changed"}
    assert first["database"].items == applied_versions(stack.db_url) and len(first["database"].items) >= 3
    assert first["secrets"].items == ["OPENAI_API_KEY", "PUBLIC_URL", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"]
    assert stack.api.secrets["OPENAI_API_KEY"]["value"] == api.secret_digest(stack.openai_key)
    deployed = stack.api.functions["twilio-voice"]
    assert (deployed.version, deployed.verify_jwt, deployed.status) == (1, False, "ACTIVE")
    number = stack.twilio.number(NUMBER)
    assert (number["voice_url"], number["voice_method"]) == (stack.webhook.url, "POST")
    sid = number["sid"]
    assert management_calls(stack) == [
        ("GET", "/secrets"), ("POST", "/secrets"), ("GET", "/secrets"),
        ("GET", "/functions/twilio-voice"), ("POST", "/functions/deploy"), ("GET", "/functions/twilio-voice")]
    assert twilio_calls(stack) == [("GET", ".json"), ("POST", f"/{sid}.json"), ("GET", f"/{sid}.json")]

    stack.clear_requests()
    second = run_up(stack)
    assert {r.status for r in second.values()} == {"unchanged"}
    stack.assert_only_reads()
    assert stack.webhook.requests == []
    assert management_calls(stack) == [("GET", "/secrets"), ("GET", "/functions/twilio-voice")]
    assert twilio_calls(stack) == [("GET", ".json")]
    assert stack.api.functions["twilio-voice"].version == 1


def test_a_changed_secret_or_file_is_the_only_thing_sent_again(stack):
    run_up(stack)
    stack.clear_requests()
    changed = {**stack.environ, "OPENAI_API_KEY": "sk-proj-rotated-" + "9" * 20}
    (stack.project / "supabase/functions/twilio-voice/index.ts").write_text(
        'import "./config.ts";\nDeno.serve(() => new Response("v2"));\n')
    result = run_up(stack, environ=changed)
    assert result["secrets"].items == ["OPENAI_API_KEY"]
    assert stack.api.requests[1].json() == [{"name": "OPENAI_API_KEY", "value": changed["OPENAI_API_KEY"]}]
    assert result["function"].status == "changed" and stack.api.functions["twilio-voice"].version == 2
    assert result["database"].status == "unchanged" and result[f"number {NUMBER}"].status == "unchanged"
    project = f"/v1/projects/{stack.api.ref}"
    stack.api.assert_no_unexpected_requests(
        allowed=[is_read, ("POST", f"{project}/secrets"), ("POST", f"{project}/functions/deploy")])
    stack.twilio.assert_only_reads()


def test_a_deploy_by_someone_else_is_replaced_and_verify_jwt_turned_back_off(stack):
    run_up(stack)
    stack.api.functions["twilio-voice"].version = 7  # e.g. `supabase functions deploy` from a laptop
    stack.api.functions["twilio-voice"].verify_jwt = True
    result = run_up(stack)["function"]
    assert result.status == "changed" and "someone else" in result.detail
    assert stack.api.functions["twilio-voice"].verify_jwt is False


def test_dry_run_only_reads_and_says_what_would_change(stack):
    planned = run_up(stack, dry_run=True)
    assert {r.status for r in planned.values()} == {"would change"}
    stack.assert_only_reads()
    assert stack.api.calls() and stack.twilio.calls() and stack.webhook.requests == []
    assert stack.api.secrets == {} and stack.api.functions == {}
    assert stack.twilio.number(NUMBER)["voice_url"] == "https://old.example.com/voice"
    with connect(stack.db_url, autocommit=True) as conn:
        assert conn.execute("select to_regclass('supabase_migrations.schema_migrations')").fetchone()[0] is None


def test_numbers_default_to_the_tenants_in_the_database(pg_server, tmp_path):
    from supactl.database.tenants import add_number, add_tenant

    with cloud_stack(pg_server, tmp_path, numbers_variable=False) as stack:
        first = run_up(stack)
        assert first["numbers"].status == "skipped"  # no tenant owns a number yet
        with connect(stack.db_url, autocommit=True) as conn:
            add_tenant(conn, "acme")
            add_number(conn, NUMBER, "acme")
        second = run_up(stack)
        assert second[f"number {NUMBER}"].status == "changed"
        assert stack.twilio.number(NUMBER)["voice_url"] == stack.webhook.url


def test_a_missing_setting_stops_before_any_request(stack):
    result = CliRunner().invoke(app, ["up", "--workdir", str(stack.project)], env=stack.without("OPENAI_API_KEY") | {
        "OPENAI_API_KEY": ""})
    assert result.exit_code == 2
    assert "OPENAI_API_KEY is not set" in result.output and "platform.openai.com/api-keys" in result.output
    assert stack.api.requests == [] and stack.twilio.requests == []
    with connect(stack.db_url, autocommit=True) as conn:
        assert conn.execute("select to_regclass('public.tenants')").fetchone()[0] is None


def test_a_malformed_token_is_refused_before_any_request(stack):
    result = CliRunner().invoke(app, ["up", "--workdir", str(stack.project)],
                                env=stack.environ | {"SUPABASE_ACCESS_TOKEN": "eyJhbGciOiJIUzI1NiJ9.anon"})
    assert result.exit_code == 2 and "not a Supabase access token" in result.output
    assert stack.api.requests == []


def test_up_json_reports_each_step_for_ci(stack):
    runner = CliRunner()
    first = runner.invoke(app, ["up", "--workdir", str(stack.project), "--json"], env=stack.environ)
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert report["ok"] is True and report["function_url"] == stack.webhook.url
    assert [s["status"] for s in report["steps"]] == ["changed"] * 4
    stack.clear_requests()
    second = json.loads(runner.invoke(app, ["up", "--workdir", str(stack.project), "--json"], env=stack.environ).stdout)
    assert [s["status"] for s in second["steps"]] == ["unchanged"] * 4
    stack.assert_only_reads()


def test_no_secret_value_appears_in_any_output(stack):
    """Unique values for every secret; every command's output, --json, --verbose trace and error is
    searched for them."""
    unique = {name: stack.environ[name] for name in ("OPENAI_API_KEY", "TWILIO_AUTH_TOKEN", "SUPABASE_ACCESS_TOKEN")}
    extra = "sekret-" + "7" * 24
    env = stack.environ
    runner = CliRunner()
    where = ["--workdir", str(stack.project)]
    outputs = [
        runner.invoke(app, ["up", *where, "--dry-run", "--verbose"], env=env),
        runner.invoke(app, ["up", *where, "--json", "--verbose"], env=env),
        runner.invoke(app, ["up", *where, "--verbose"], env=env),
        runner.invoke(app, ["secrets", "set", f"EXTRA_VALUE={extra}", *where, "--verbose"], env=env),
        runner.invoke(app, ["secrets", "set", f"EXTRA_VALUE={extra}", *where, "--json"], env=env),
        runner.invoke(app, ["secrets", "list", *where, "--json", "--verbose"], env=env),
        runner.invoke(app, ["doctor", *where, "--json"], env=env),
        runner.invoke(app, ["doctor", *where], env=env),
    ]
    stack.api.fail_next(500, times=20)
    outputs.append(runner.invoke(app, ["secrets", "set", f"EXTRA_VALUE={extra}", *where, "--verbose"], env=env))
    assert outputs[-1].exit_code == 4
    assert [o.exit_code for o in outputs[:-1]] == [0] * 8, [o.output for o in outputs if o.exit_code]
    text = "\n".join(o.output + repr(o.exception) for o in outputs)
    assert "-> POST" in text  # the trace was really printed
    for value in [*unique.values(), extra]:
        assert value not in text
    state = (stack.project / "supabase/.temp/supactl-deploys.json").read_text()
    assert not any(value in state for value in unique.values())
