"""supactl.cloud.management_api against the Management API contract server, and byte-for-byte against the
requests the official CLI sends (tests/fixtures/official_cli/, captured from supabase 2.117.0)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import pytest

from supactl.cloud import management_api as api
from supactl.cloud.deploy_bundle import collect_function
from supactl.cloud.http_client import RetryPolicy
from supactl.config import ManagementSettings
from supactl.errors import ApiError, ConfigError
from tests.contract_servers.management_api import ManagementApiServer

FIXTURES = Path(__file__).parent / "fixtures" / "official_cli"
REF = "abcdefghijklmnopqrst"


@pytest.fixture
def server():
    with ManagementApiServer(ref=REF) as running:
        yield running


@pytest.fixture
def client(server):
    settings = ManagementSettings(server.base_url, server.token, server.ref)
    with api.management_client(settings, retry=RetryPolicy(sleep=lambda s: None)) as c:
        yield c


def golden(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def test_secrets_set_sends_the_official_cli_body(server, client):
    expected = golden("secrets_set.json")
    api.set_secrets(client, REF, {"OPENAI_API_KEY": "sk-test", "FOO": "bar"})
    (request,) = server.requests
    assert (request.method, request.path) == (expected["method"], expected["path"])
    assert request.content_type == expected["content_type"]
    assert request.body.decode() == expected["body"]


@pytest.mark.parametrize("case", ["deploy_with_imports", "deploy_single_file"])
def test_deploy_sends_the_official_cli_multipart(server, client, case):
    expected = golden(f"{case}/request.json")
    boundary = expected["content_type"].split("boundary=", 1)[1]
    bundle = collect_function(FIXTURES / case / "project", "twilio-voice")
    api.deploy_function(client, REF, bundle, boundary=boundary)
    (request,) = server.requests
    assert request.method == expected["method"]
    assert request.target == expected["path"]
    assert request.content_type == expected["content_type"]
    assert request.body == (FIXTURES / case / "body.form").read_bytes()


def test_deploy_then_get_reports_active_with_verify_jwt_off(server, client):
    bundle = collect_function(FIXTURES / "deploy_with_imports" / "project", "twilio-voice")
    first = api.deploy_function(client, REF, bundle)
    second = api.deploy_function(client, REF, bundle)
    fetched = api.get_function(client, REF, "twilio-voice")
    assert (first.version, second.version, fetched.version) == (1, 2, 2)
    assert fetched.status == "ACTIVE" and fetched.verify_jwt is False
    assert set(server.functions["twilio-voice"].files) == {f.path for f in bundle.files}
    assert server.calls() == [("POST", f"/v1/projects/{REF}/functions/deploy")] * 2 + [
        ("GET", f"/v1/projects/{REF}/functions/twilio-voice")]


def test_secrets_list_returns_digests_and_unset_deletes(server, client):
    api.set_secrets(client, REF, {"OPENAI_API_KEY": "sk-live-abcdef123456", "TWILIO_AUTH_TOKEN": "0" * 32})
    listed = {s.name: s.digest for s in api.list_secrets(client, REF)}
    assert listed == {"OPENAI_API_KEY": hashlib.sha256(b"sk-live-abcdef123456").hexdigest(),
                      "TWILIO_AUTH_TOKEN": api.secret_digest("0" * 32)}
    api.unset_secrets(client, REF, ["OPENAI_API_KEY"])
    assert [s.name for s in api.list_secrets(client, REF)] == ["TWILIO_AUTH_TOKEN"]
    assert server.requests[2].json() == ["OPENAI_API_KEY"]
    assert server.calls() == [("POST", f"/v1/projects/{REF}/secrets"), ("GET", f"/v1/projects/{REF}/secrets"),
                              ("DELETE", f"/v1/projects/{REF}/secrets"), ("GET", f"/v1/projects/{REF}/secrets")]


@pytest.mark.parametrize("name", ["SUPABASE_URL", "supabase_key", "1ABC", "A-B", "", "A B"])
def test_refuses_reserved_and_invalid_secret_names_before_sending(server, client, name):
    with pytest.raises(ConfigError):
        api.set_secrets(client, REF, {name: "value"})
    assert server.requests == []


def test_patch_turns_verify_jwt_off_without_a_deploy(server, client):
    api.deploy_function(client, REF, collect_function(FIXTURES / "deploy_single_file" / "project", "twilio-voice"))
    server.functions["twilio-voice"].verify_jwt = True
    assert api.set_verify_jwt(client, REF, "twilio-voice", False).verify_jwt is False
    assert server.requests[-1].json() == {"verify_jwt": False}
    assert server.functions["twilio-voice"].version == 1


def test_missing_function_is_none_not_an_error(server, client):
    assert api.get_function(client, REF, "twilio-voice") is None


def test_rate_limit_is_retried_after_the_advised_delay(server):
    slept: list[float] = []
    settings = ManagementSettings(server.base_url, server.token, server.ref)
    with api.management_client(settings, retry=RetryPolicy(sleep=slept.append)) as c:
        server.fail_next(429, times=2, retry_after="3")
        assert api.get_project(c, REF).status == "ACTIVE_HEALTHY"
    assert slept == [3.0, 3.0]
    assert [r.status for r in server.requests] == [429, 429, 200]


def test_a_refused_token_names_the_variable_to_fix(server):
    settings = ManagementSettings(server.base_url, "sbp_" + "0" * 40, server.ref)
    with api.management_client(settings, retry=RetryPolicy(sleep=lambda s: None)) as c:
        with pytest.raises(ApiError) as caught:
            api.list_secrets(c, REF)
    assert caught.value.status == 401
    assert caught.value.message == f"Supabase Management API: Unauthorized (HTTP 401 on GET /v1/projects/{REF}/secrets)"
    assert "SUPABASE_ACCESS_TOKEN" in caught.value.hint


# -- the contract server refuses what the real API would refuse ------------------------------------

def raw(server, method, path, token=None, **kwargs) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token or server.token}", **kwargs.pop("headers", {})}
    return httpx.request(method, server.base_url + path, headers=headers, **kwargs)


def test_contract_server_refuses_malformed_requests(server):
    secrets = f"/v1/projects/{REF}/secrets"
    assert raw(server, "GET", secrets, token="sbp_not-a-token").status_code == 401
    assert raw(server, "GET", "/v1/projects/abc/secrets").status_code == 404
    assert raw(server, "GET", f"/v1/projects/{'z' * 20}/secrets").status_code == 403
    assert raw(server, "PUT", secrets, json=[]).status_code == 404
    assert raw(server, "POST", secrets, json=[{"name": "A", "value": "1", "extra": 1}]).status_code == 400
    assert raw(server, "POST", secrets, json=[{"name": "SUPABASE_X", "value": "1"}]).status_code == 400
    assert raw(server, "POST", secrets, content=b'[{"name":"A","value":"1"}]').status_code == 415
    deploy = f"/v1/projects/{REF}/functions/deploy"
    assert raw(server, "POST", deploy + "?slug=f", files={"file": ("index.ts", b"x")}).status_code == 400
    form = {"metadata": json.dumps({"entrypoint_path": "supabase/functions/f/index.ts"})}
    assert raw(server, "POST", deploy + "?slug=f", data=form,
               files={"file": ("supabase/functions/f/other.ts", b"")}).status_code == 400
    assert raw(server, "POST", deploy + "?slug=-bad", data=form).status_code == 400
    assert server.secrets == {} and server.functions == {}
