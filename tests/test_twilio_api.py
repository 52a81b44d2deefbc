"""supactl.cloud.twilio_api against the Twilio contract server: paging, linking, refusals, retries, auth."""

from __future__ import annotations

import base64
import secrets
from pathlib import Path

import httpx
import pytest

from supactl.cloud.deployed_function import function_url
from supactl.cloud.http_client import RetryPolicy, TraceLog
from supactl.errors import ApiError, CheckFailed, ConfigError, SupactlError
from supactl.redact import redact
from supactl.cloud.twilio_api import (
    IncomingNumber,
    NumberNotFound,
    NumberRoutedElsewhere,
    TwilioClient,
    link_number,
    route_of,
)
from tests.contract_servers.twilio import TwilioContractServer

FUNCTION_URL = "https://abcdefghijklmnopqrst.supabase.co/functions/v1/twilio-voice"
APP_SID = "AP" + "1" * 32
TRUNK_SID = "TK" + "2" * 32


@pytest.fixture
def sleeps() -> list[float]:
    return []


def make_client(server: TwilioContractServer, project_dir: Path, sleeps: list[float] | None = None,
                trace: TraceLog | None = None, **env: str) -> TwilioClient:
    environ = {"TWILIO_ACCOUNT_SID": server.account_sid, "TWILIO_AUTH_TOKEN": server.auth_token,
               "TWILIO_API_URL": server.base_url, **env}
    environ = {k: v for k, v in environ.items() if v}
    sink = sleeps if sleeps is not None else []
    return TwilioClient.from_config(project_dir=project_dir, environ=environ,
                                    retry=RetryPolicy(sleep=sink.append), trace=trace)


@pytest.fixture
def client(twilio: TwilioContractServer, tmp_path: Path, sleeps: list[float]):
    with make_client(twilio, tmp_path, sleeps) as c:
        yield c


def list_path(server: TwilioContractServer) -> str:
    return f"/2010-04-01/Accounts/{server.account_sid}/IncomingPhoneNumbers.json"


def instance_path(server: TwilioContractServer, sid: str) -> str:
    return f"/2010-04-01/Accounts/{server.account_sid}/IncomingPhoneNumbers/{sid}.json"


# -- listing and finding -----------------------------------------------------------------------

def test_list_numbers_follows_every_page(tmp_path: Path):
    with TwilioContractServer(page_size=2) as server:
        added = [server.add_number(f"+1415555010{i}") for i in range(5)]
        with make_client(server, tmp_path) as client:
            numbers = client.list_numbers()
    assert [n.sid for n in numbers] == added
    assert server.calls() == [("GET", list_path(server))] * 3
    assert [r.query.get("Page") for r in server.requests] == [None, ["1"], ["2"]]
    assert all(r.query.get("PageToken") for r in server.requests[1:])


def test_list_numbers_of_an_empty_account_is_one_request(twilio: TwilioContractServer, client: TwilioClient):
    assert client.list_numbers() == []
    assert twilio.calls() == [("GET", list_path(twilio))]


def test_find_number_picks_the_exact_number_among_partial_matches(twilio, client):
    longer = twilio.add_number("+49301234", voice_url="https://other.example/voice")
    exact = twilio.add_number("+4930123")
    found = client.find_number("+4930123")
    assert found == IncomingNumber(exact, "+4930123", None, "POST", None, None)
    assert found.sid != longer
    assert [r.query["PhoneNumber"] for r in twilio.requests] == [["+4930123"]]


def test_find_number_follows_pages_to_the_match(tmp_path: Path):
    with TwilioContractServer(page_size=1) as server:
        server.add_number("+493012345")
        wanted = server.add_number("+4930123")
        with make_client(server, tmp_path) as client:
            assert client.find_number("+4930123").sid == wanted
    assert server.calls() == [("GET", list_path(server))] * 2


def test_find_number_missing_names_the_account_and_where_to_buy_it(twilio, client):
    twilio.add_number("+14155550100")
    with pytest.raises(NumberNotFound) as caught:
        client.find_number("+14155550199")
    assert twilio.account_sid in caught.value.message
    assert "Phone Numbers" in caught.value.hint


@pytest.mark.parametrize("bad", ["14155550100", "+1 415 555 0100", "+0123", ""])
def test_find_number_refuses_non_e164_before_any_request(twilio, client, bad):
    with pytest.raises(SupactlError, match="E.164"):
        client.find_number(bad)
    assert twilio.requests == []


# -- linking ------------------------------------------------------------------------------------

def test_link_number_sets_voice_url_and_post_then_confirms(twilio, client):
    sid = twilio.add_number("+14155550100", voice_url="https://old.example/voice", voice_method="GET")
    result = link_number(client, "+14155550100", FUNCTION_URL)
    assert result.changed and result.cleared == ()
    assert (result.number.voice_url, result.number.voice_method) == (FUNCTION_URL, "POST")
    assert (twilio.numbers[sid]["voice_url"], twilio.numbers[sid]["voice_method"]) == (FUNCTION_URL, "POST")
    assert twilio.calls() == [("GET", list_path(twilio)), ("POST", instance_path(twilio, sid)),
                              ("GET", instance_path(twilio, sid))]
    assert twilio.requests[1].form() == {"VoiceUrl": [FUNCTION_URL], "VoiceMethod": ["POST"]}


def test_second_link_changes_nothing_and_only_reads(twilio, client):
    twilio.add_number("+14155550100")
    assert link_number(client, "+14155550100", FUNCTION_URL).changed
    twilio.clear_requests()
    again = link_number(client, "+14155550100", FUNCTION_URL)
    assert not again.changed
    assert again.number.voice_url == FUNCTION_URL
    assert twilio.calls() == [("GET", list_path(twilio))]


def test_link_treats_a_trailing_slash_as_a_different_url(twilio, client):
    # The function verifies Twilio's signature over its own URL: "…/twilio-voice/" would fail it.
    sid = twilio.add_number("+14155550100", voice_url=FUNCTION_URL + "/")
    assert link_number(client, "+14155550100", FUNCTION_URL).changed
    assert twilio.numbers[sid]["voice_url"] == FUNCTION_URL


@pytest.mark.parametrize("routing, words", [
    ({"voice_application_sid": APP_SID}, f"voice application {APP_SID}"),
    ({"trunk_sid": TRUNK_SID}, f"SIP trunk {TRUNK_SID}"),
])
def test_link_refuses_a_number_routed_to_an_application_or_trunk(twilio, client, routing, words):
    sid = twilio.add_number("+14155550100", **routing)
    before = dict(twilio.numbers[sid])
    with pytest.raises(NumberRoutedElsewhere) as caught:
        link_number(client, "+14155550100", FUNCTION_URL)
    assert words in caught.value.message
    assert "ignores" in caught.value.message and "--force" in caught.value.hint
    assert twilio.calls() == [("GET", list_path(twilio))]
    assert twilio.numbers[sid] == before


@pytest.mark.parametrize("routing, cleared_field", [
    ({"voice_application_sid": APP_SID}, "VoiceApplicationSid"),
    ({"trunk_sid": TRUNK_SID}, "TrunkSid"),
])
def test_force_clears_the_application_or_trunk(twilio, client, routing, cleared_field):
    sid = twilio.add_number("+14155550100", voice_url=FUNCTION_URL, **routing)
    result = link_number(client, "+14155550100", FUNCTION_URL, force=True)
    assert result.changed and len(result.cleared) == 1
    assert twilio.requests[1].form() == {"VoiceUrl": [FUNCTION_URL], "VoiceMethod": ["POST"], cleared_field: [""]}
    number = twilio.numbers[sid]
    assert not number["voice_application_sid"] and not number["trunk_sid"]
    assert route_of(result.number, FUNCTION_URL).reaches_function is True


def test_link_fails_loudly_when_the_refetch_disagrees(twilio, client):
    class Forgetful(TwilioClient):
        def fetch_number(self, sid):
            real = super().fetch_number(sid)
            return IncomingNumber(real.sid, real.phone_number, None, "POST", None, None)

    twilio.add_number("+14155550100")
    with pytest.raises(CheckFailed, match="Twilio accepted the update"):
        link_number(Forgetful(client.http, client.account_sid), "+14155550100", FUNCTION_URL)


def test_update_number_refuses_fields_it_does_not_know(twilio, client):
    sid = twilio.add_number("+14155550100")
    with pytest.raises(TypeError, match="VoiceURL"):
        client.update_number(sid, VoiceURL=FUNCTION_URL)
    assert twilio.requests == []


# -- HTTP behaviour -----------------------------------------------------------------------------

def test_rate_limited_requests_are_retried_honouring_retry_after(twilio, client, sleeps):
    twilio.add_number("+14155550100")
    twilio.fail_next(429, 2, retry_after="3")
    assert link_number(client, "+14155550100", FUNCTION_URL).changed
    assert [r.status for r in twilio.requests[:3]] == [429, 429, 200]
    assert len(sleeps) == 2 and all(s >= 3 for s in sleeps)
    assert [c[0] for c in twilio.calls()] == ["GET", "GET", "GET", "POST", "GET"]


def test_server_errors_retry_then_fail_as_one_twilio_line(twilio, client, sleeps):
    twilio.fail_next(503, 20)
    with pytest.raises(ApiError) as caught:
        client.list_numbers()
    message = caught.value.message
    assert "\n" not in message
    assert "Service Unavailable (error 20503, https://www.twilio.com/docs/errors/20503)" in message
    assert caught.value.status == 503
    assert len(twilio.requests) == len(sleeps) + 1 > 1


def test_wrong_auth_token_is_one_line_naming_the_credentials(twilio, tmp_path):
    wrong = secrets.token_hex(16)
    trace = TraceLog()
    with make_client(twilio, tmp_path, trace=trace, TWILIO_AUTH_TOKEN=wrong) as client:
        with pytest.raises(ApiError) as caught:
            client.list_numbers()
    error = caught.value
    assert error.status == 401
    assert "Authenticate (error 20003, https://www.twilio.com/docs/errors/20003)" in error.message
    assert "TWILIO_AUTH_TOKEN" in error.hint and "console.twilio.com" in error.hint
    assert len(twilio.requests) == 1, "an auth failure is not retried"
    everything = "\n".join([error.message, error.hint, *trace.lines, redact(repr(error))])
    assert wrong not in everything and twilio.auth_token not in everything


def test_api_key_and_secret_authenticate_for_the_account(twilio, tmp_path):
    key, key_secret = twilio.add_api_key()
    twilio.add_number("+14155550100")
    with make_client(twilio, tmp_path, TWILIO_AUTH_TOKEN="", TWILIO_API_KEY=key,
                     TWILIO_API_SECRET=key_secret) as client:
        assert [n.phone_number for n in client.list_numbers()] == ["+14155550100"]
    assert twilio.requests[0].basic_auth_user == key


def test_credentials_come_from_dotenv_when_the_environment_has_none(twilio, tmp_path):
    (tmp_path / ".env").write_text(
        f"TWILIO_ACCOUNT_SID={twilio.account_sid}\nTWILIO_AUTH_TOKEN={twilio.auth_token}\n"
        f"TWILIO_API_URL={twilio.base_url}\n")
    with TwilioClient.from_config(project_dir=tmp_path, environ={}) as client:
        assert client.list_numbers() == []
    assert twilio.requests[0].basic_auth_user == twilio.account_sid


@pytest.mark.parametrize("env, missing", [
    ({"TWILIO_ACCOUNT_SID": ""}, "TWILIO_ACCOUNT_SID"),
    ({"TWILIO_AUTH_TOKEN": ""}, "TWILIO_AUTH_TOKEN"),
    ({"TWILIO_AUTH_TOKEN": "", "TWILIO_API_KEY": "SK" + "a" * 32}, "TWILIO_API_SECRET"),
])
def test_missing_credentials_are_named_before_any_request(twilio, tmp_path, env, missing):
    with pytest.raises(ConfigError) as caught:
        make_client(twilio, tmp_path, **env)
    assert caught.value.message.startswith(f"{missing} is not set")
    assert "console.twilio.com" in caught.value.hint
    assert twilio.requests == []


@pytest.mark.parametrize("name, value", [
    ("TWILIO_ACCOUNT_SID", "SK" + "a" * 32),
    ("TWILIO_ACCOUNT_SID", "AC123"),
    ("TWILIO_AUTH_TOKEN", "not-a-token-" + "x" * 20),
    ("TWILIO_API_KEY", "AC" + "a" * 32),
    ("TWILIO_API_URL", "api.twilio.com"),
])
def test_malformed_settings_are_refused_before_any_request(twilio, tmp_path, name, value):
    with pytest.raises(ConfigError) as caught:
        make_client(twilio, tmp_path, **{name: value, "TWILIO_API_SECRET": "s" * 32})
    assert name in caught.value.message
    assert twilio.requests == []
    if name == "TWILIO_AUTH_TOKEN":
        assert value not in caught.value.message + (caught.value.hint or "")


def test_no_secret_reaches_any_message_or_trace(twilio, tmp_path):
    key, key_secret = twilio.add_api_key()
    sid = twilio.add_number("+14155550100", trunk_sid=TRUNK_SID)
    trace = TraceLog()
    texts: list[str] = []
    with make_client(twilio, tmp_path, trace=trace, TWILIO_API_KEY=key, TWILIO_API_SECRET=key_secret) as client:
        for attempt in (lambda: link_number(client, "+14155550100", FUNCTION_URL),
                        lambda: client.find_number("+14155550199"),
                        lambda: link_number(client, "+14155550100", FUNCTION_URL, force=True)):
            try:
                texts.append(repr(attempt()))
            except SupactlError as exc:
                texts += [exc.message, exc.hint or ""]
    assert twilio.numbers[sid]["voice_url"] == FUNCTION_URL
    basic = base64.b64encode(f"{key}:{key_secret}".encode()).decode()
    everything = "\n".join(texts + trace.lines)
    for secret in (key_secret, twilio.auth_token, basic):
        assert secret not in everything
    assert redact(f"token {twilio.auth_token} secret {key_secret}") == "token *** secret ***"


# -- where calls go -----------------------------------------------------------------------------

@pytest.mark.parametrize("number, reaches, words", [
    (IncomingNumber("PN" + "0" * 32, "+1", FUNCTION_URL, "POST", None, None), True, "this project's function"),
    (IncomingNumber("PN" + "0" * 32, "+1", FUNCTION_URL, "GET", None, None), False, "needs POST"),
    (IncomingNumber("PN" + "0" * 32, "+1", "https://x.example/", "POST", None, None), False, "elsewhere"),
    (IncomingNumber("PN" + "0" * 32, "+1", None, None, None, None), False, "no voice webhook"),
    (IncomingNumber("PN" + "0" * 32, "+1", FUNCTION_URL, "POST", APP_SID, None), False, "VoiceUrl ignored"),
    (IncomingNumber("PN" + "0" * 32, "+1", FUNCTION_URL, "POST", None, TRUNK_SID), False, "SIP trunk"),
])
def test_route_of_says_whether_calls_reach_the_function(number, reaches, words):
    route = route_of(number, FUNCTION_URL)
    assert route.reaches_function is reaches and words in route.description


def test_route_without_a_known_function_url_is_undecided():
    number = IncomingNumber("PN" + "0" * 32, "+1", "https://x.example/", "POST", None, None)
    assert route_of(number, None).reaches_function is None


def test_function_url_prefers_flag_then_public_url_then_project_ref(tmp_path: Path):
    env = {"PUBLIC_URL": "https://proxy.example/twilio-voice", "SUPABASE_PROJECT_REF": "abcdefghijklmnopqrst"}
    assert function_url("https://flag.example/v", project_dir=tmp_path, environ=env) == "https://flag.example/v"
    assert function_url(project_dir=tmp_path, environ=env) == "https://proxy.example/twilio-voice"
    del env["PUBLIC_URL"]
    assert function_url(project_dir=tmp_path, environ=env) == FUNCTION_URL
    with pytest.raises(ConfigError, match="project ref"):
        function_url(project_dir=tmp_path, environ={})
    with pytest.raises(ConfigError, match="not an http"):
        function_url("ftp://x", project_dir=tmp_path, environ={})


# -- the contract server refuses what Twilio would --------------------------------------------

def raw(server: TwilioContractServer, method: str, path: str, *, auth=None, **kwargs) -> httpx.Response:
    auth = auth or (server.account_sid, server.auth_token)
    return httpx.request(method, server.base_url + path, auth=auth, **kwargs)


def test_contract_server_refuses_unknown_and_malformed_update_parameters(twilio):
    sid = twilio.add_number("+14155550100")
    path = instance_path(twilio, sid)
    misspelt = raw(twilio, "POST", path, data={"VoiceURL": FUNCTION_URL})
    assert (misspelt.status_code, misspelt.json()["code"]) == (400, 70002)
    assert set(misspelt.json()) == {"code", "message", "more_info", "status"}
    assert raw(twilio, "POST", path, data={"VoiceUrl": "not a url"}).json()["code"] == 21502
    assert raw(twilio, "POST", path, data={"VoiceMethod": "PUT"}).status_code == 400
    assert raw(twilio, "POST", path, data={"VoiceApplicationSid": "AP123"}).status_code == 400
    assert raw(twilio, "POST", path, json={"VoiceUrl": FUNCTION_URL}).status_code == 400
    assert twilio.numbers[sid]["voice_url"] is None


def test_contract_server_refuses_bad_auth_paths_and_methods(twilio):
    sid = twilio.add_number("+14155550100")
    other_account = "AC" + "f" * 32
    cases = [
        (raw(twilio, "GET", list_path(twilio), auth=(twilio.account_sid, "0" * 32)), 401, 20003),
        (httpx.get(twilio.base_url + list_path(twilio)), 401, 20003),
        (raw(twilio, "GET", list_path(twilio).replace(twilio.account_sid, other_account)), 401, 20003),
        (raw(twilio, "GET", instance_path(twilio, "PN" + "e" * 32)), 404, 20404),
        (raw(twilio, "GET", f"/2010-04-01/Accounts/{twilio.account_sid}/Numbers.json"), 404, 20404),
        (raw(twilio, "DELETE", instance_path(twilio, sid)), 405, 20004),
        (raw(twilio, "GET", list_path(twilio), params={"Page": "1"}), 400, 70002),
        (raw(twilio, "GET", list_path(twilio), params={"PageSize": "1001"}), 400, 70002),
        (raw(twilio, "GET", list_path(twilio), params={"Number": "+1"}), 400, 70002),
    ]
    for response, status, code in cases:
        assert (response.status_code, response.json()["code"]) == (status, code), response.request.url
    assert cases[0][0].headers["WWW-Authenticate"].startswith("Basic")
