"""The agent acts, on one machine: `supactl dev` (real Postgres, the function on real Deno, the strict
loopback Realtime peer), the demo tenant's tools plus an HTTP tool served here, driven by keypad
digits (digit N calls the N-th tool by name, the order the function lists them in):
1 check_hours (HTTP, its signature verified with the README's own example), 2 end_call,
3 lookup_order (SQL under the tenant's RLS), 4 transfer_to_human."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from supactl.database.call_log import PostgresCallLog
from tests.test_e2e_call import DevProcess, _call

pytestmark = pytest.mark.slow
README = Path(__file__).resolve().parents[1] / "README.md"


def readme_verify():
    """The `verify` function of the README's "Defining tools" section, exactly as printed there."""
    section = README.read_text().split("## Defining tools", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]
    scope: dict = {}
    exec(code, scope)
    return scope["verify"]


class ToolServer:
    def __init__(self, key: str) -> None:
        verify, received = readme_verify(), []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                ok = verify(key, self.headers.get("X-Supactl-Timestamp", ""),
                            self.headers.get("X-Supactl-Signature", ""), body)
                received.append({"verified": ok, "body": json.loads(body)})
                answer = json.dumps({"open": "9-17", "verified": ok}).encode()
                self.send_response(200 if ok else 401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/tools/hours"


def supactl(project: Path, *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "supactl", *args], cwd=project, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    project = tmp_path_factory.mktemp("tools_project")
    dev = DevProcess(project, {})
    key = supactl(project, "tools", "signing-key", "--tenant", "Demo tenant").strip()
    server = ToolServer(key)
    supactl(project, "tools", "add", "check_hours", "--tenant", "Demo tenant", "--description", "Opening hours",
            "--url", server.url, "--timeout-ms", "3000")
    yield project, dev, server
    server.http.shutdown()
    dev.kill()


def stored(dev, call_sid: str):
    return PostgresCallLog(dev.env["SUPABASE_DB_URL"]).call_with_turns(call_sid)


def test_an_http_tool_gets_a_signed_request_and_its_answer_reaches_the_model(stack):
    project, dev, server = stack
    report = _call(project, "--dtmf", "1", dev=dev)
    assert [r["verified"] for r in server.received] == [True]
    body = server.received[0]["body"]
    assert (body["tool"], body["call_sid"], body["tenant_id"]) == ("check_hours", report["call_sid"],
                                                                  dev.env["SUPACTL_DEMO_TENANT_ID"])
    call, turns = stored(dev, report["call_sid"])
    tools = [t for t in turns if t.role == "tool"]
    assert len(tools) == 1 and tools[0].tool["status"] == "ok"
    assert json.loads(tools[0].tool["output"]) == {"open": "9-17", "verified": True}
    after = turns[turns.index(tools[0]) + 1]
    assert after.role == "assistant" and "the tool answered" in after.text
    assert [t.seq for t in turns] == sorted(t.seq for t in turns)


def test_an_sql_tool_sees_only_its_tenants_rows(stack):
    project, dev, _ = stack
    report = _call(project, "--dtmf", "3", dev=dev)
    _, turns = stored(dev, report["call_sid"])
    (tool,) = [t for t in turns if t.role == "tool"]
    assert tool.tool["name"] == "lookup_order" and json.loads(tool.tool["output"]) == {"order_id": "1001",
                                                                                       "status": "shipped"}
    # The neighbour's order exists, and the same function run as the demo tenant cannot see it.
    from supactl.database.connection import connect

    with connect(dev.env["SUPABASE_DB_URL"]) as conn:
        assert conn.execute("select count(*) from demo.orders where order_id = '2002'").fetchone()[0] == 1


def test_a_transfer_nobody_answers_comes_back_to_the_agent(stack):
    project, dev, _ = stack
    report = _call(project, "--dtmf", "4", "--transfer-outcome", "no-answer", dev=dev)
    assert report["transfers"] == [{"to": "+15555550199", "caller_id": dev.env["SUPACTL_DEMO_NUMBER"],
                                    "outcome": "no-answer"}]
    assert report["streams"] == 2
    call, turns = stored(dev, report["call_sid"])
    assert (call.transfer_to, call.transfer_outcome) == ("+15555550199", "no-answer")
    assert [t.role for t in turns][-2:] == ["tool", "assistant"]
    assert "nobody answered" in turns[-1].text


def test_an_answered_transfer_ends_the_agents_part_and_end_call_hangs_up(stack):
    project, dev, _ = stack
    transferred = _call(project, "--dtmf", "4", dev=dev)
    assert transferred["ended_by"] == "transfer" and transferred["streams"] == 1
    call, _ = stored(dev, transferred["call_sid"])
    assert (call.status, call.end_reason, call.transfer_outcome) == ("completed", "transferred", "answered")
    hung_up = _call(project, "--dtmf", "2", dev=dev)
    assert hung_up["ended_by"] == "function"
    call, turns = stored(dev, hung_up["call_sid"])
    assert (call.status, call.end_reason) == ("completed", "agent hung up")
    assert [t.tool["name"] for t in turns if t.role == "tool"] == ["end_call"]


def test_tools_test_runs_a_tool_as_the_bridge_would(stack):
    project, _, server = stack

    def tool_test(*args: str) -> dict:
        return json.loads(supactl(project, "tools", "test", *args, "--tenant", "Demo tenant", "--json"))["result"]

    neighbours = tool_test("lookup_order", "--args", '{"order_id": "2002"}')
    assert neighbours["status"] == "ok" and json.loads(neighbours["output"]) == {"error": "no order 2002 for this caller"}
    mine = tool_test("lookup_order", "--args", '{"order_id": "1001"}')
    assert json.loads(mine["output"])["status"] == "shipped"
    before = len(server.received)
    hours = tool_test("check_hours")
    assert hours["status"] == "ok" and server.received[before]["verified"] is True
    assert tool_test("end_call")["ran"] is False
