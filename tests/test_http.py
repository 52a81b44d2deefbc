"""supactl.cloud.http_client: retries, Retry-After, one-line errors, redaction — with a fake sleep, never waiting."""

from __future__ import annotations

from email.utils import format_datetime
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from supactl.cloud.http_client import RetryPolicy, Service, TraceLog, api_client, retry_after_seconds
from supactl.errors import ApiError
from supactl.redact import register

SERVICE = Service("Example API")


def scripted(responses):
    """A transport answering from a list (Response or exception), recording each request."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        item = responses.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    return httpx.MockTransport(handler), seen


def client_for(responses, trace=None, **policy):
    transport, seen = scripted(responses)
    slept: list[float] = []
    retry = RetryPolicy(sleep=slept.append, random=lambda: 1.0, **policy)
    return api_client("https://api.example.test", SERVICE, transport=transport, retry=retry, trace=trace), seen, slept


def test_retries_429_waiting_as_long_as_retry_after_says():
    client, seen, slept = client_for([
        httpx.Response(429, headers={"Retry-After": "7"}, json={"message": "slow down"}),
        httpx.Response(200, json={"ok": True}),
    ])
    assert client.post("/v1/x", json={"a": 1}).json() == {"ok": True}
    assert slept == [7.0]
    assert [r.content for r in seen] == [b'{"a":1}', b'{"a":1}']  # the body is sent again, whole


def test_retries_5xx_and_connection_errors_with_exponential_backoff():
    client, seen, slept = client_for([
        httpx.Response(503), httpx.ConnectError("refused"), httpx.Response(502), httpx.Response(200, json=[]),
    ], base_delay=0.5)
    assert client.get("/v1/x").json() == []
    assert slept == [0.5, 1.0, 2.0]  # random=1.0: the full step each time
    assert len(seen) == 4


def test_jitter_keeps_at_least_half_of_each_step():
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0, random=lambda: 0.0)
    assert [policy.backoff(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 4.0]


def test_gives_up_after_the_last_attempt_with_the_service_message():
    client, seen, slept = client_for([httpx.Response(500, json={"message": "boom"})] * 3, attempts=3)
    with pytest.raises(ApiError) as caught:
        client.get("/v1/x")
    assert caught.value.status == 500
    assert caught.value.message == "Example API: boom (HTTP 500 on GET /v1/x)"
    assert len(seen) == 3 and len(slept) == 2


def test_unreachable_service_is_one_api_error_not_an_httpx_traceback():
    client, seen, _ = client_for([httpx.ConnectError("[Errno 111] Connection refused")] * 2, attempts=2)
    with pytest.raises(ApiError, match=r"could not reach Example API \(GET https://api.example.test/v1/x\)"):
        client.get("/v1/x")


def test_client_errors_are_not_retried():
    client, seen, slept = client_for([httpx.Response(400, json={"message": "name is invalid"})])
    with pytest.raises(ApiError, match="name is invalid"):
        client.post("/v1/x")
    assert len(seen) == 1 and slept == []


def test_retry_after_beyond_the_limit_fails_at_once_saying_when_to_retry():
    client, seen, slept = client_for([httpx.Response(429, headers={"Retry-After": "3600"})])
    with pytest.raises(ApiError) as caught:
        client.get("/v1/x")
    assert caught.value.hint == "retry in 3600 s" and slept == []


def test_retry_after_as_an_http_date():
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    header = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert retry_after_seconds(header, now=lambda: now.timestamp()) == 30.0
    assert retry_after_seconds("soon") is None


def test_non_json_error_body_is_one_line():
    client, _, _ = client_for([httpx.Response(502, text="<html>\n<b>Bad gateway</b>\n</html>")], attempts=1)
    with pytest.raises(ApiError) as caught:
        client.get("/v1/x")
    assert "\n" not in caught.value.message and "Bad gateway" in caught.value.message


def test_secrets_are_masked_in_errors_and_in_the_trace():
    secret = "sk-proj-TOPSECRET-value-123456"
    register(secret)
    trace = TraceLog()
    client, _, _ = client_for([httpx.Response(400, json={"message": f"bad key {secret}"})], trace=trace)
    with pytest.raises(ApiError) as caught:
        client.get(f"/v1/x?key={secret}")
    assert secret not in caught.value.message
    assert trace.lines and not any(secret in line for line in trace.lines)
    assert any("***" in line for line in trace.lines)
