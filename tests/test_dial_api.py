"""The function's dial endpoint (dial_api.ts) over HTTP: the function on the pinned Deno with the
Postgres store, Twilio's REST API played by the contract server (which refuses what the Calls API
refuses and records every request it got, so "no Twilio request" is checked where it would land)."""

from __future__ import annotations

import base64
import json
import secrets
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from supactl.database import tenants
from supactl.database.connection import connect
from supactl.database.jwt_tokens import tenant_token
from tests.attack_support import AUTH_TOKEN, FunctionUnderAttack
from tests.contract_servers.twilio import TwilioContractServer

SERVICE_ROLE_KEY = "service-role-" + secrets.token_hex(16)
ANON_KEY = "anon-" + secrets.token_hex(16)
JWT_SECRET = "dial-api-jwt-secret-" + secrets.token_hex(8)
CALLEE = "+14155550199"
FUNCTION_PORT = 48011
# The endpoint's own cap (dial_api.ts MAX_DIAL_BODY_BYTES is 16 KiB).
OVERSIZE_BODY = 17 * 1024


@pytest.fixture(scope="module")
def twilio():
    with TwilioContractServer(auth_token=AUTH_TOKEN) as server:
        yield server


@pytest.fixture(scope="module")
def function(db_url: str, twilio: TwilioContractServer):
    process = FunctionUnderAttack(db_url, "ws://127.0.0.1:9/v1/realtime", port=FUNCTION_PORT, extra_env={
        "SUPABASE_SERVICE_ROLE_KEY": SERVICE_ROLE_KEY, "SUPABASE_ANON_KEY": ANON_KEY,
        "TWILIO_ACCOUNT_SID": twilio.account_sid, "TWILIO_API_URL": twilio.base_url,
    })
    try:
        yield process
    finally:
        process.kill()


_numbers = iter(range(200, 999))


def tenant_with_number(db_url: str, twilio: TwilioContractServer, *, record: bool = False) -> tuple[str, str]:
    number = f"+1415556{next(_numbers):04d}"
    twilio.add_number(number)
    with connect(db_url, autocommit=True) as conn:
        tenant = tenants.add_tenant(conn, f"dial-api-{number[1:]}")
        tenants.add_number(conn, number, tenant.id)
        conn.execute("insert into public.tenant_agents (tenant_id, record_calls) values (%s, %s)", (tenant.id, record))
    return tenant.id, number


def dial(function: FunctionUnderAttack, body: object, *, bearer: str | None = SERVICE_ROLE_KEY,
         content: bytes | None = None, authorization: str | None = None) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if authorization is not None:
        headers["authorization"] = authorization
    elif bearer is not None:
        headers["authorization"] = f"Bearer {bearer}"
    return httpx.post(f"{function.public_url}?action=dial", headers=headers, timeout=20,
                      content=content if content is not None else json.dumps(body).encode())


def created(twilio: TwilioContractServer) -> list[dict]:
    return list(twilio.calls_api.calls.values())


def calls_api_posts(twilio: TwilioContractServer) -> int:
    return sum(1 for r in twilio.requests if r.method == "POST" and r.path.endswith("/Calls.json"))


def test_a_dial_places_the_call_as_supactl_dial_does(function, twilio, db_url):
    tenant, number = tenant_with_number(db_url, twilio)
    response = dial(function, {"to": CALLEE, "from": number, "tenant": tenant,
                               "context": {"order": "A-17"}, "machine_detection": True})
    assert response.status_code == 201, response.text
    answer = response.json()
    call = twilio.calls_api.calls[answer["call_sid"]]
    assert (answer["to"], answer["from"], answer["tenant"]) == (CALLEE, number, tenant)
    assert call["to"] == CALLEE and call["from"] == number
    form = call["parameters"]
    url = urlparse(form["Url"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == function.public_url
    encoded = parse_qs(url.query)["context"][0]
    assert json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))) == {"order": "A-17"}
    assert form["StatusCallback"] == f"{function.public_url}?event=call-status"
    assert call["status_callback_events"] == ["initiated", "ringing", "answered", "completed"]
    assert form["MachineDetection"] == "Enable"
    assert "Record" not in form, "recording is off unless the tenant turned it on"


def test_recording_follows_the_tenants_setting(function, twilio, db_url):
    tenant, number = tenant_with_number(db_url, twilio, record=True)
    response = dial(function, {"to": CALLEE, "from": number, "tenant": tenant})
    assert response.status_code == 201, response.text
    form = twilio.calls_api.calls[response.json()["call_sid"]]["parameters"]
    assert form["Record"] == "true" and form["RecordingChannels"] == "dual"
    assert form["RecordingStatusCallback"] == f"{function.public_url}?event=recording-status"


@pytest.mark.parametrize("bearer", [None, "basic", "not-the-key", SERVICE_ROLE_KEY[:-1], SERVICE_ROLE_KEY + "x", ANON_KEY,
                                    "tenant-jwt"])
def test_anything_but_the_service_role_key_gets_401_and_no_twilio_request(function, twilio, db_url, bearer):
    tenant, number = tenant_with_number(db_url, twilio)
    if bearer == "tenant-jwt":  # a tenant user's token is not the service-role key either
        bearer = tenant_token(tenant, JWT_SECRET, subject="user-1")
    # The key itself, but not as a bearer token.
    authorization = "Basic " + base64.b64encode(f"x:{SERVICE_ROLE_KEY}".encode()).decode() if bearer == "basic" else None
    before, posts = len(created(twilio)), calls_api_posts(twilio)
    response = dial(function, {"to": CALLEE, "from": number, "tenant": tenant}, bearer=bearer,
                    authorization=authorization)
    assert response.status_code == 401
    assert "Bearer" in response.json()["error"]
    assert (len(created(twilio)), calls_api_posts(twilio)) == (before, posts)
    assert SERVICE_ROLE_KEY not in response.text


def test_an_oversize_body_gets_413_and_no_twilio_request(function, twilio, db_url):
    tenant, number = tenant_with_number(db_url, twilio)
    posts = calls_api_posts(twilio)
    body = json.dumps({"to": CALLEE, "from": number, "tenant": tenant, "context": {"n": "x" * OVERSIZE_BODY}})
    assert dial(function, None, content=body.encode()).status_code == 413
    assert calls_api_posts(twilio) == posts


@pytest.mark.parametrize("change, status, problem", [
    ({"from": "other-tenant"}, 422, "is not a number of tenant"),
    ({"from": "+14155550000"}, 422, "is not a number of tenant"),
    ({"to": "4155550199"}, 400, "to must be an E.164"),
    ({"context": [1]}, 400, "context must be a JSON object"),
    ({"context": {"n": "x" * 2041}}, 400, "context is larger than 2048 bytes"),
    ({"record": True}, 400, "unknown fields: record"),
])
def test_the_rules_of_supactl_dial_refuse_before_twilio(function, twilio, db_url, change, status, problem):
    tenant, number = tenant_with_number(db_url, twilio)
    body = {"to": CALLEE, "from": number, "tenant": tenant, **change}
    if change.get("from") == "other-tenant":
        body["from"] = tenant_with_number(db_url, twilio)[1]
    posts = calls_api_posts(twilio)
    response = dial(function, body)
    assert response.status_code == status, response.text
    assert problem in response.json()["error"]
    assert calls_api_posts(twilio) == posts


def test_not_json_is_400(function, twilio):
    posts = calls_api_posts(twilio)
    response = dial(function, None, content=b"to=+14155550199")
    assert response.status_code == 400 and "not JSON" in response.json()["error"]
    assert calls_api_posts(twilio) == posts


def test_without_from_the_tenants_first_number_calls(function, twilio, db_url):
    tenant, number = tenant_with_number(db_url, twilio)
    lower = "+1415550" + number[-4:]  # sorts before the +1415556… numbers of this module
    twilio.add_number(lower)
    with connect(db_url, autocommit=True) as conn:
        tenants.add_number(conn, lower, tenant)
    response = dial(function, {"to": CALLEE, "tenant": tenant})
    assert response.status_code == 201, response.text
    assert response.json()["from"] == lower
    assert twilio.calls_api.calls[response.json()["call_sid"]]["from"] == lower


def test_a_tenant_without_numbers_or_a_tenant_that_is_not_an_id_is_refused_before_twilio(function, twilio, db_url):
    with connect(db_url, autocommit=True) as conn:
        bare = tenants.add_tenant(conn, "dial-api-no-numbers").id
    posts = calls_api_posts(twilio)
    response = dial(function, {"to": CALLEE, "tenant": str(bare)})
    assert response.status_code == 422 and "has no phone number" in response.json()["error"]
    response = dial(function, {"to": CALLEE, "tenant": "acme"})
    assert response.status_code == 400 and "tenant must be the tenant's id" in response.json()["error"]
    assert calls_api_posts(twilio) == posts
