"""The request log and checks every contract server shares (tests/contract_servers/local_http.py):
a recorded write fails `assert_only_reads`, an unexpected request is named in the failure, and the
servers are one module each, on one base."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.contract_servers.function_webhook import FunctionWebhookServer
from tests.contract_servers.local_http import (LocalHttpServer, RecordedRequest, Reply, assert_no_unexpected_requests,
                                               assert_only_reads, is_read, json_reply, text_reply)
from tests.contract_servers.management_api import ManagementApiServer
from tests.contract_servers.postgrest import PostgrestServer
from tests.contract_servers.supabase_auth import SupabaseAuthServer
from tests.contract_servers.twilio import TwilioContractServer

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class EchoServer(LocalHttpServer):
    """Answers JSON on /json, text anywhere else, 201 to any write."""

    def _answer(self, request: RecordedRequest) -> Reply:
        status = 200 if request.is_read else 201
        if request.path == "/json":
            return json_reply(status, {"method": request.method}, {"X-Echo": "yes"})
        return text_reply(status, "ok")


@pytest.fixture
def echo():
    with EchoServer() as server, httpx.Client(base_url=server.base_url) as client:
        yield server, client


def test_reads_pass_the_read_only_check(echo):
    server, client = echo
    client.get("/json", params={"a": "1"})
    client.head("/json")
    server.assert_only_reads()
    assert server.calls() == [("GET", "/json"), ("HEAD", "/json")]


def test_a_recorded_write_fails_the_read_only_check_and_is_named(echo):
    server, client = echo
    client.get("/json")
    client.post("/things", params={"page": "2"}, json={"name": "x" * 200})
    client.delete("/things/7")
    with pytest.raises(AssertionError) as failure:
        server.assert_only_reads()
    message = str(failure.value)
    assert message.splitlines()[0] == "EchoServer received 2 unexpected request(s):"
    assert "  POST /things?page=2 -> 201" in message and "DELETE /things/7 -> 201" in message
    assert "GET /json" not in message
    assert "…" in message and "x" * 200 not in message  # a long body is cut short
    assert message.splitlines()[-1] == "allowed: is_read"


def test_allowed_requests_may_be_given_by_path_or_pattern(echo):
    server, client = echo
    client.get("/json")
    client.post("/things")
    client.patch("/things/7")
    server.assert_no_unexpected_requests(allowed=[is_read, ("POST", "/things"), ("PATCH", re.compile(r"/things/\d+"))])
    with pytest.raises(AssertionError, match=r"PATCH /things/7 -> 201\nallowed: is_read, POST /things$"):
        server.assert_no_unexpected_requests(allowed=[is_read, ("POST", "/things")])


def test_one_check_over_several_servers_names_each_offender(echo):
    server, client = echo
    with EchoServer() as other:
        httpx.put(other.base_url + "/other")
        client.get("/json")
        with pytest.raises(AssertionError) as failure:
            assert_only_reads(server, other)
        assert str(failure.value).count("EchoServer received") == 1 and "PUT /other -> 201" in str(failure.value)
        with pytest.raises(AssertionError, match="allowed: nothing"):
            assert_no_unexpected_requests(server, allowed=[])


def test_assert_requests_wants_exactly_these_in_order(echo):
    server, client = echo
    client.get("/a")
    client.post("/b")
    server.assert_requests([("GET", "/a"), ("POST", "/b")])
    with pytest.raises(AssertionError, match="POST /b -> 201"):
        server.assert_requests([("GET", "/a")])
    server.clear_requests()
    server.assert_requests([])


def test_the_log_keeps_what_was_sent_and_what_was_answered(echo):
    server, client = echo
    reply = client.get("/json")
    assert (reply.json(), reply.headers["x-echo"], reply.headers["content-type"]) == (
        {"method": "GET"}, "yes", "application/json; charset=utf-8")
    client.post("/form?x=&y=2", data={"a": "1", "b": ""}, auth=("AC123", "secret"))
    client.put("/json", json={"k": [1]})
    read, form, put = server.requests
    assert (read.status, read.body, read.query) == (200, b"", {})
    assert form.query == {"x": [""], "y": ["2"]} and form.form() == {"a": ["1"], "b": [""]}
    assert form.basic_auth_user == "AC123" and read.basic_auth_user is None
    assert form.content_type == "application/x-www-form-urlencoded"
    assert put.json() == {"k": [1]} and put.headers["content-type"] == "application/json"
    assert not put.is_read and put.status == 201


def test_every_contract_server_is_a_local_http_server():
    for server in (ManagementApiServer, TwilioContractServer, SupabaseAuthServer, PostgrestServer,
                   FunctionWebhookServer):
        assert issubclass(server, LocalHttpServer), server


def test_contract_servers_are_imported_under_one_root():
    """`contract_servers.x` and `tests.contract_servers.x` would load the same file as two modules."""
    sources = [path for folder in ("tests", "bench") for path in (REPO_ROOT / folder).rglob("*.py")]
    stray = [f"{path.relative_to(REPO_ROOT)}:{n}" for path in sources
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if re.match(r"\s*(from|import) contract_servers\b", line)]
    assert stray == []
