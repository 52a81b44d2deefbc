"""The CLI's contract with scripts: every failure under --json is one JSON object on stdout with
`ok: false`, `error`, `hint` and `exit_code`; exit codes as the README's table; usage errors
have their own code; secrets never appear in any output, whatever the shape of the input."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from supactl.cli import app

SETTINGS = ["SUPABASE_DB_URL", "SUPABASE_ACCESS_TOKEN", "SUPABASE_PROJECT_REF", "SUPABASE_PROJECT_ID", "OPENAI_API_KEY",
            "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_URL", "PUBLIC_URL",
            "SUPABASE_ANON_KEY"]


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "supabase").mkdir()
    (tmp_path / "supabase" / "config.toml").write_text('project_id = "t"\n')
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def failure(result, code: int) -> dict:
    assert result.exit_code == code, (result.stdout, result.stderr)
    parsed = json.loads(result.stdout)
    assert parsed["ok"] is False and parsed["exit_code"] == code and parsed["error"] and "hint" in parsed
    return parsed


# Each command with input it must refuse, and the documented code for it.
BAD_INPUT = [
    (["tenants", "list"], 2, "no database URL"),
    (["tenants", "add", "Acme"], 2, "no database URL"),
    (["numbers", "add", "123", "--tenant", "x"], 1, "E.164"),
    (["numbers", "list"], 2, "no database URL"),
    (["numbers", "remove", "+14155550100"], 2, "no database URL"),
    (["db", "status"], 2, "no database URL"),
    (["db", "push", "--db-url", "mysql://u:p@h/db"], 2, "must start with postgresql://"),
    (["calls", "list"], 2, "no `supactl dev` is running"),
    (["calls", "show", "CA1"], 2, "no database URL"),
    (["call", "--dtmf", "1x2", "http://127.0.0.1:9/f", "--auth-token", "t0ken-123", "--to", "+14155550000"], 1,
     "--dtmf"),
    (["call", "--record", "/nonexistent/dir/x.wav", "http://127.0.0.1:9/f", "--auth-token", "t0ken-123",
      "--to", "+14155550000"], 1, "does not exist"),
    (["call"], 2, "no function URL"),
    (["secrets", "set", "NOEQUALS"], 2, "argument 1"),
    (["secrets", "list"], 2, "settings are missing"),
    (["secrets", "unset", "OPENAI_API_KEY"], 2, "settings are missing"),
    (["deploy"], 2, "no function folder"),
    (["up"], 2, "settings are missing"),
    (["doctor"], 5, "check(s) failed"),
    (["members", "list"], 2, "SUPABASE_SERVICE_ROLE_KEY"),
    (["twilio", "numbers"], 2, "TWILIO"),
    (["twilio", "link-number", "12"], 1, "E.164"),
    (["dev", "status"], 5, "no `supactl dev` is running"),
    (["selfhost", "manifests"], 64, "Missing option"),
    (["tools", "list"], 2, "no database URL"),
    (["tools", "add", "t", "--tenant", "x", "--description", "d"], 1, "exactly one of"),
    (["tools", "add", "t", "--tenant", "x", "--description", "d", "--end-call", "--parameters", "{no"], 1, "is not JSON"),
    (["tools", "signing-key"], 64, "Missing option"),
    (["tenants", "list", "--no-such-flag"], 64, "No such option"),
    (["no-such-command"], 64, "No such command"),
]


@pytest.mark.parametrize("args, code, message", BAD_INPUT, ids=[" ".join(a[:2]) for a, _, _ in BAD_INPUT])
def test_every_command_refuses_bad_input_with_its_code_and_one_json_object(project, args, code, message):
    parsed = failure(run(*args, "--json"), code)
    assert message in parsed["error"]


@pytest.mark.parametrize("args, code, message", BAD_INPUT[:4], ids=["tenants list", "tenants add", "numbers add",
                                                                    "numbers list"])
def test_without_json_a_failure_is_an_error_line_and_a_hint_on_stderr(project, args, code, message):
    result = run(*args)
    assert result.exit_code == code and result.stdout == ""
    assert result.stderr.startswith("error: ") and message in result.stderr


def test_a_success_under_json_has_ok_true(project):
    parsed = json.loads(run("dev", "stop", "--json").stdout)
    assert parsed == {"ok": True, "stopped": []}


def test_dash_h_is_help_everywhere_and_completion_can_be_installed(project):
    assert run("-h").exit_code == 0 and "--install-completion" in run("-h").stdout
    assert run("tenants", "list", "-h").exit_code == 0
    assert "Show at most" in run("calls", "list", "-h").stdout
    assert "tenant's name" in run("tenants", "add", "-h").stdout


def test_usage_errors_exit_64_not_the_configuration_code(project):
    result = run("tenants", "list", "--no-such-flag")
    assert result.exit_code == 64 and "No such option" in result.stderr


def test_dev_takes_workdir_like_every_other_command(project):
    for command in (["dev"], ["tenants", "list"], ["deploy"], ["call"], ["calls", "list"], ["db", "push"]):
        assert "--workdir" in run(*command, "-h").stdout, command


# --- redaction --------------------------------------------------------------------------------

SECRET = "sk-proj-Zq9sweepSECRETvalue0001"
PASSWORD_TAIL = "sweepPW@tail7788"


@pytest.mark.parametrize("args", [
    ["secrets", "set", f"OPENAI_API_KEY=ok", SECRET],
    ["secrets", "set", f"OPENAI_API_KEY:{SECRET}"],
    ["secrets", "set", SECRET],
    ["secrets", "set", f"BAD NAME={SECRET}"],
    ["secrets", "set", f"OPENAI_API_KEY={SECRET}", "-v"],
], ids=["second bare arg", "colon", "bare", "bad name", "verbose"])
def test_no_argument_of_secrets_set_is_ever_printed(project, args):
    for extra in ([], ["--json"]):
        result = run(*args, *extra)
        assert result.exit_code != 0
        assert SECRET not in result.stdout + result.stderr
        assert SECRET[8:] not in result.stdout + result.stderr


def test_a_url_password_holding_an_at_sign_is_masked_and_the_fix_is_to_url_encode_it(project):
    for command in (["db", "status"], ["tenants", "list"], ["calls", "list"]):
        result = run(*command, "--db-url", f"postgresql://postgres:{PASSWORD_TAIL}@127.0.0.1:9/db", "--json")
        parsed = failure(result, 2)
        assert "URL-encode" in parsed["hint"] and "%40" in parsed["hint"]
        for part in PASSWORD_TAIL.split("@"):
            assert part not in result.stdout + result.stderr


def test_dotenv_values_are_masked_in_errors(project):
    (project / ".env").write_text(f"SUPABASE_DB_URL=postgresql://postgres:{PASSWORD_TAIL}@127.0.0.1:9/db\n"
                                  f"OPENAI_API_KEY={SECRET}\nSUPABASE_ACCESS_TOKEN=not-a-token-{SECRET}\n")
    for command in (["up"], ["doctor"], ["db", "status"], ["secrets", "list"]):
        result = run(*command, "--json")
        assert result.exit_code != 0
        out = result.stdout + result.stderr
        assert SECRET not in out and "tail7788" not in out and "sweepPW" not in out


def test_an_unexpected_error_shows_a_masked_traceback_with_its_own_code(project, monkeypatch):
    from supactl.commands import tenants
    from supactl.redact import register

    register(SECRET)

    def broken(*_args, **_kwargs):
        raise RuntimeError(f"boom {SECRET}")

    monkeypatch.setattr(tenants, "_connect", broken)
    result = run("tenants", "list", "--json")
    assert result.exit_code == 70 and "Traceback" in result.stderr and SECRET not in result.stdout + result.stderr
    assert json.loads(result.stdout)["ok"] is False


# --- finding the project and its settings -------------------------------------------------------

def test_commands_find_the_project_from_a_subfolder(project, monkeypatch):
    (project / ".env").write_text("SUPABASE_DB_URL=mysql://from-dotenv/db\n")
    sub = project / "supabase" / "functions"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    parsed = failure(run("tenants", "list", "--json"), 2)
    assert str(project / ".env") in parsed["error"]


def test_the_message_names_where_the_database_url_came_from(project, monkeypatch):
    monkeypatch.setenv("SUPABASE_DB_URL", "mysql://x/db")
    assert "SUPABASE_DB_URL in the environment" in failure(run("db", "status", "--json"), 2)["error"]
    monkeypatch.delenv("SUPABASE_DB_URL")
    parsed = failure(run("calls", "list", "--json"), 2)
    assert "--db-url" not in parsed["error"]  # never blame a flag the user did not pass


def test_a_running_dev_is_the_last_source_and_a_stopped_one_is_not_used(project):
    state = project / ".supactl"
    state.mkdir()
    (state / "dev.env").write_text("SUPABASE_DB_URL=postgresql://postgres:postgres@127.0.0.1:9/postgres\n")
    parsed = failure(run("tenants", "list", "--json"), 2)
    assert "its last one has stopped" in parsed["error"]


@pytest.mark.parametrize("content, expected", [
    ("OPENAI_API_KEY=sk-é\n".encode("utf-16"), "is not UTF-8 text (UTF-16)"),
    ("OPENAI_API_KEY=caf\xe9\n".encode("latin-1"), "is not UTF-8 text"),
    (b'SUPABASE_ACCESS_TOKEN="sbp_unterminated\n', "line 1: cannot parse"),
])
def test_a_broken_dotenv_is_refused_once_naming_the_file(project, content, expected):
    (project / ".env").write_bytes(content)
    for command in (["up"], ["tenants", "list"], ["secrets", "list"]):
        result = run(*command, "--json")
        parsed = failure(result, 2)
        assert expected in parsed["error"] and str(project / ".env") in parsed["error"]
        assert "Traceback" not in result.stderr
    doctor = run("doctor")
    assert doctor.exit_code == 5 and doctor.stdout.count(expected) == 1, doctor.stdout


def test_up_reports_every_missing_setting_in_one_run(project):
    parsed = failure(run("up", "--json"), 2)
    for name in ("SUPABASE_ACCESS_TOKEN", "no Supabase project ref", "no database URL", "OPENAI_API_KEY",
                 "TWILIO_AUTH_TOKEN"):
        assert name in parsed["error"], name


def test_init_ignores_local_state(tmp_path):
    """Issue 14, problem 9 (fixed in c3cf817): .supactl/ and supabase/.temp/ are ignored."""
    assert run("init", str(tmp_path)).exit_code == 0
    ignored = (tmp_path / ".gitignore").read_text().splitlines()
    assert ".supactl/" in ignored and "supabase/.temp/" in ignored


# --- supactl call as a smoke test -------------------------------------------------------------

@pytest.mark.parametrize("fields, reason", [
    ({"streams": 0, "says": ["This number is not in service."]}, "did not open a media stream"),
    ({"streams": 1, "frames_received": 0}, "no audio came back"),
    ({"streams": 1, "frames_received": 50}, "no reply after the caller spoke"),
    ({"streams": 1, "frames_received": 50, "latencies_ms": [400.0], "protocol_errors": ["model: 401"]},
     "the model failed"),
])
def test_a_call_that_did_not_do_what_a_smoke_test_means_is_a_failed_check(fields, reason):
    from supactl.commands.call import smoke_test_failure
    from supactl.simulator.simulated_call import CallReport

    assert reason in (smoke_test_failure(CallReport(call_sid="CA1", **fields)) or "")
    assert smoke_test_failure(CallReport(call_sid="CA1", streams=1, frames_received=50, latencies_ms=[400.0])) is None


def test_a_call_to_a_function_that_is_not_there_fails_before_any_report_is_lost(project, tmp_path):
    result = run("call", "http://127.0.0.1:9/functions/v1/twilio-voice", "--auth-token", "t0ken-123",
                 "--to", "+14155550000", "--record", str(tmp_path / "heard.wav"), "--json")
    assert result.exit_code != 0 and json.loads(result.stdout)["ok"] is False


def test_up_reports_a_broken_dotenv_once_not_once_per_setting(project):
    (project / ".env").write_text('SUPABASE_ACCESS_TOKEN="sbp_unterminated\n')
    result = run("up")
    assert result.exit_code == 2 and result.stderr.count("cannot parse") == 1, result.stderr
