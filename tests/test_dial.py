"""`supactl dial` against the Twilio contract server (which enforces the Calls API's parameters) and
a real Postgres; the rules of supactl/cloud/outbound.py; `--wait`; recording on and off; and the
contract server's own refusals of what Twilio refuses."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from typer.testing import CliRunner

from supactl.cli import app
from supactl.cloud import outbound
from supactl.database import tenants
from supactl.database.connection import connect
from tests.contract_servers.twilio import TwilioContractServer

FUNCTION_URL = "https://abcdefghijklmnopqrst.supabase.co/functions/v1/twilio-voice"
CALLEE = "+14155550199"


@pytest.fixture
def run(twilio: TwilioContractServer, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: str):
        environ = {"TWILIO_ACCOUNT_SID": twilio.account_sid, "TWILIO_AUTH_TOKEN": twilio.auth_token,
                   "TWILIO_API_URL": twilio.base_url, "TWILIO_API_KEY": None, "TWILIO_API_SECRET": None,
                   "PUBLIC_URL": None, "SUPABASE_DB_URL": db_url}
        return runner.invoke(app, ["dial", *args, "--function-url", FUNCTION_URL], env=environ)

    return invoke


_numbers = iter(range(100, 999))


def tenant_with_number(db_url: str, twilio: TwilioContractServer, *, record: bool = False) -> tuple[str, str]:
    number = f"+1415555{next(_numbers):04d}"
    name = f"dial-{number[1:]}"
    twilio.add_number(number)
    with connect(db_url, autocommit=True) as conn:
        tenant = tenants.add_tenant(conn, name)
        tenants.add_number(conn, number, name)
        conn.execute("insert into public.tenant_agents (tenant_id, record_calls) values (%s, %s)", (tenant.id, record))
    return name, number


def created_calls(twilio: TwilioContractServer) -> list[dict]:
    return list(twilio.calls_api.calls.values())


def test_dial_creates_the_call_with_the_functions_webhook_status_events_and_amd(run, twilio, db_url):
    tenant, number = tenant_with_number(db_url, twilio)
    result = run(CALLEE, "--tenant", tenant, "--machine-detection", "--context", '{"order": "A-17"}')
    assert result.exit_code == 0, result.output
    [call] = created_calls(twilio)
    assert result.stdout.strip() == call["sid"]
    sent = call["parameters"]
    assert (sent["To"], sent["From"], sent["MachineDetection"]) == (CALLEE, number, "Enable")
    assert sent["StatusCallback"] == f"{FUNCTION_URL}?event=call-status"
    assert call["status_callback_events"] == ["initiated", "ringing", "answered", "completed"]
    assert sent["Url"].startswith(FUNCTION_URL + "?context=")
    encoded = sent["Url"].split("context=")[1]
    assert json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))) == {"order": "A-17"}
    assert "Record" not in sent, "recording is off by default: nothing requested"


def test_recording_on_asks_for_dual_channels_and_a_recording_callback(run, twilio, db_url):
    tenant, _ = tenant_with_number(db_url, twilio, record=True)
    assert run(CALLEE, "--tenant", tenant).exit_code == 0
    [call] = created_calls(twilio)
    sent = call["parameters"]
    assert (sent["Record"], sent["RecordingChannels"]) == ("true", "dual")
    assert sent["RecordingStatusCallback"] == f"{FUNCTION_URL}?event=recording-status"


def test_a_from_the_tenant_does_not_own_is_refused_before_twilio(run, twilio, db_url):
    tenant, _ = tenant_with_number(db_url, twilio)
    other, theirs = tenant_with_number(db_url, twilio)
    result = run(CALLEE, "--tenant", tenant, "--from", theirs)
    assert result.exit_code == 1
    assert f"{theirs} is not a number of tenant {tenant}" in result.output
    assert created_calls(twilio) == []


@pytest.mark.parametrize("context, problem", [
    ("not json", "not JSON"), ("[1, 2]", "JSON object"), (json.dumps({"x": "y" * 3000}), "larger than 2048"),
])
def test_a_bad_context_is_refused_before_twilio(run, twilio, db_url, context, problem):
    tenant, _ = tenant_with_number(db_url, twilio)
    result = run(CALLEE, "--tenant", tenant, "--context", context)
    assert result.exit_code == 1 and problem in result.output
    assert created_calls(twilio) == []


@pytest.mark.parametrize("final, code", [("completed", 0), ("busy", 5), ("no-answer", 5), ("failed", 5)])
def test_wait_follows_the_call_to_its_end(twilio, final, code, monkeypatch):
    from supactl.cloud.twilio_api import TwilioClient

    twilio.add_number("+14155550111")
    client = TwilioClient.from_config(environ={"TWILIO_ACCOUNT_SID": twilio.account_sid,
                                               "TWILIO_AUTH_TOKEN": twilio.auth_token,
                                               "TWILIO_API_URL": twilio.base_url})
    form = outbound.dial_form(to=CALLEE, from_number="+14155550111", function_url=FUNCTION_URL, context=None,
                              machine_detection=False, record=False)
    sid = outbound.place_call(client, form)["sid"]
    polls: list[float] = []

    def far_end_hangs_up(seconds: float) -> None:
        polls.append(seconds)
        twilio.calls_api.finish(sid, final, duration=9)

    if code == 0:
        assert outbound.wait_for_end(client, sid, sleep=far_end_hangs_up)["status"] == "completed"
    else:
        with pytest.raises(outbound.CheckFailed) as error:
            outbound.wait_for_end(client, sid, sleep=far_end_hangs_up)
        assert error.value.exit_code == code and final in error.value.message
    assert len(polls) == 1


def test_wait_is_bounded(twilio):
    from supactl.cloud.twilio_api import TwilioClient

    twilio.add_number("+14155550112")
    client = TwilioClient.from_config(environ={"TWILIO_ACCOUNT_SID": twilio.account_sid,
                                               "TWILIO_AUTH_TOKEN": twilio.auth_token,
                                               "TWILIO_API_URL": twilio.base_url})
    sid = outbound.place_call(client, outbound.dial_form(
        to=CALLEE, from_number="+14155550112", function_url=FUNCTION_URL, context=None,
        machine_detection=False, record=False))["sid"]
    now = [0.0]
    with pytest.raises(outbound.CheckFailed, match="still queued"):
        outbound.wait_for_end(client, sid, timeout_s=10, sleep=lambda s: now.__setitem__(0, now[0] + s),
                              clock=lambda: now[0])


# -- the contract server refuses what Twilio refuses ------------------------------------------

def create(twilio: TwilioContractServer, form: list[tuple[str, str]], auth: tuple[str, str] | None = None):
    return httpx.post(f"{twilio.base_url}/2010-04-01/Accounts/{twilio.account_sid}/Calls.json",
                      content=urlencode(form), headers={"content-type": "application/x-www-form-urlencoded"},
                      auth=auth or (twilio.account_sid, twilio.auth_token))


def valid_form(number: str) -> list[tuple[str, str]]:
    return [("To", CALLEE), ("From", number), ("Url", FUNCTION_URL)]


@pytest.mark.parametrize("change, code", [
    (lambda f: [p for p in f if p[0] != "To"], 21201),
    (lambda f: [p for p in f if p[0] != "Url"], 21205),
    (lambda f: [*f, ("Twiml", "<Response/>")], 21205),
    (lambda f: [("To", "4155550199"), *f[1:]], 21211),
    (lambda f: [f[0], ("From", "+19995550000"), f[2]], 21210),
    (lambda f: [*f, ("StatusCallbackEvent", "hangup")], 21201),
    (lambda f: [*f, ("MachineDetection", "Yes")], 21201),
    (lambda f: [*f, ("Record", "yes")], 21201),
    (lambda f: [*f, ("RecordingChannels", "stereo")], 21201),
    (lambda f: [*f, ("StatusCallbackMethod", "PUT")], 21201),
    (lambda f: [*f, ("StatusCallback", "not a url")], 21502),
    (lambda f: [*f, ("Recording", "true")], 21201),
])
def test_the_contract_server_refuses_what_the_calls_api_refuses(twilio, change, code):
    twilio.add_number("+14155550120")
    response = create(twilio, change(valid_form("+14155550120")))
    assert response.status_code == 400 and response.json()["code"] == code, response.text
    assert create(twilio, valid_form("+14155550120")).status_code == 201
    assert create(twilio, valid_form("+14155550120"), auth=(twilio.account_sid, "wrong")).status_code == 401


def test_recording_download_needs_the_accounts_credentials(twilio, tmp_path, monkeypatch):
    from supactl.cloud.twilio_api import TwilioClient

    twilio.add_number("+14155550121")
    call_sid = create(twilio, valid_form("+14155550121")).json()["sid"]
    audio = b"RIFF" + bytes(range(64))
    recording = twilio.calls_api.add_recording(call_sid, audio)
    media = f"{twilio.base_url}/2010-04-01/Accounts/{twilio.account_sid}/Recordings/{recording}.wav"
    assert httpx.get(media).status_code == 401
    client = TwilioClient.from_config(environ={"TWILIO_ACCOUNT_SID": twilio.account_sid,
                                               "TWILIO_AUTH_TOKEN": twilio.auth_token,
                                               "TWILIO_API_URL": twilio.base_url})
    assert outbound.download_recording(client, call_sid) == audio


def test_calls_recording_downloads_it_from_the_contract_server(twilio, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    twilio.add_number("+14155550122")
    call_sid = create(twilio, valid_form("+14155550122")).json()["sid"]
    audio = b"RIFF" + bytes(range(32))
    twilio.calls_api.add_recording(call_sid, audio)
    environ = {"TWILIO_ACCOUNT_SID": twilio.account_sid, "TWILIO_AUTH_TOKEN": twilio.auth_token,
               "TWILIO_API_URL": twilio.base_url, "TWILIO_API_KEY": None, "TWILIO_API_SECRET": None}
    result = CliRunner().invoke(app, ["calls", "recording", call_sid, "--out", "r.wav"], env=environ)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r.wav").read_bytes() == audio
    assert twilio.auth_token not in result.output
    missing = CliRunner().invoke(app, ["calls", "recording", "CA" + "0" * 32], env=environ)
    assert missing.exit_code == 4 and "no completed recording" in missing.output
