"""What the attack suite (tests/test_attack_*.py) shares: the function on the pinned Deno against a
real Postgres and the loopback Realtime peer, on 127.0.0.1 only, with its resident memory readable
from /proc, and the function's documented limits read from its own source (app.ts,
call_session.ts), so an attack follows the limits the function claims rather than numbers of its
own.

Fixtures here are module-scoped: each attack module gets its own database and its own function
process, so one attack's leftovers (sockets, buffers, heap) never count against another's bound.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from supactl.database import tenants
from supactl.database.connection import apply_local_bootstrap, connect
from supactl.database.migrations import push
from supactl.dev_stack.deno_runtime import deno_binary, deno_env
from supactl.dev_stack.postgres_server import EmbeddedPostgres, create_database
from supactl.dev_stack.realtime_peer import PeerBehaviour, RealtimePeer
from supactl.project_files import bundled_function_dir
from supactl.simulator.call_script import HangUp, Play, Silence, WaitForReply
from supactl.simulator.simulated_call import CallOptions, CallReport, place_call_async, twilio_call_params
from supactl.twilio_signature import sign
from tests.test_e2e_handoff import FunctionProcess, _free_port, _tone

AUTH_TOKEN = "attack-suite-auth-token"
MODEL_KEY = "sk-attack-suite-model-key"
GREETING = "Thanks for calling the attack test line."
# A short server-VAD silence keeps one exchange to about two seconds (as in test_e2e_handoff).
TURN_DETECTION = {"type": "server_vad", "silence_duration_ms": 200}
START_TIMEOUT_S = 180
FUNCTION_DIR = bundled_function_dir()
MIGRATIONS = Path(__file__).resolve().parent.parent / "supabase" / "migrations"
# The migration that puts the constraints on tenant_agents (NOT VALID: earlier rows are kept).
SETTINGS_RULES_MIGRATION = "20261202090100_tenant_agent_settings.sql"


# --- the function's own limits --------------------------------------------------------------

def _source_constant(file: str, name: str) -> int:
    """`const NAME = 16 * 1024;` from the function's source, evaluated (digits, _ and * only)."""
    text = (FUNCTION_DIR / file).read_text()
    found = re.search(rf"\b{name}\s*=\s*([0-9_ *]+);", text)
    assert found, f"{name} is no longer a constant of {file}: update the attack suite"
    value = 1
    for factor in found.group(1).split("*"):
        value *= int(factor.strip().replace("_", ""))
    return value


class Limits:
    """The limits the README's "Limits against abuse" documents, as the source sets them."""

    max_form_bytes = _source_constant("app.ts", "MAX_FORM_BYTES")
    pre_start_deadline_s = _source_constant("app.ts", "PRE_START_DEADLINE_MS") / 1000
    max_unproven_streams = _source_constant("app.ts", "MAX_UNPROVEN_STREAMS")
    max_pre_start_message_chars = _source_constant("call_session.ts", "MAX_PRE_START_MESSAGE_CHARS")
    max_pre_start_messages = _source_constant("call_session.ts", "MAX_PRE_START_MESSAGES")
    max_twilio_frame_chars = _source_constant("twilio_frames.ts", "MAX_TWILIO_FRAME_CHARS")

    @classmethod
    def pre_start_budget_bytes(cls) -> int:
        """What every unproven socket of a worker together may make it hold before `start`."""
        return cls.max_unproven_streams * cls.max_pre_start_messages * cls.max_pre_start_message_chars


POLICY_VIOLATION = 1008  # the close code the README documents for a socket that broke the rules


# --- the function process -------------------------------------------------------------------

class FunctionUnderAttack(FunctionProcess):
    """`deno run index.ts` on 127.0.0.1 with the Postgres turn store and the default wall clock
    (FunctionProcess of the handoff tests sets one of 10 s); `pid` is Deno itself."""

    # Not super().__init__: its environment is the handoff tests' (their auth token, a 10 s wall clock).
    def __init__(self, db_url: str, realtime_url: str, *, port: int | None = None,
                 extra_env: dict[str, str] | None = None) -> None:
        self.port = port or _free_port()
        self.public_url = f"http://127.0.0.1:{self.port}/functions/v1/twilio-voice"
        self.stream_url = self.public_url.replace("http://", "ws://")
        env = deno_env({
            "PORT": str(self.port), "HOST": "127.0.0.1", "PUBLIC_URL": self.public_url,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "OPENAI_API_KEY": MODEL_KEY, "OPENAI_REALTIME_URL": realtime_url,
            "TURN_STORE": "postgres", "SUPABASE_DB_URL": db_url,
        })
        for name in ("SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY", "OPENAI_REALTIME_MODEL", "WALL_CLOCK_LIMIT_S"):
            env.pop(name, None)
        env.update(extra_env or {})
        self.lines: list[dict] = []
        command = [str(deno_binary()), "run", "-A", "--no-prompt", "--config", str(FUNCTION_DIR / "deno.json"),
                   str(FUNCTION_DIR / "index.ts")]
        self.process = subprocess.Popen(command, cwd=FUNCTION_DIR, env=env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        start_new_session=True)
        self.pid = self.process.pid
        threading.Thread(target=self._collect, daemon=True).start()
        give_up_at = time.monotonic() + START_TIMEOUT_S
        while not self.events("server.listening"):
            if self.process.poll() is not None or time.monotonic() > give_up_at:
                self.kill()
                raise AssertionError(f"the function did not start: {self.lines[-20:]}")
            time.sleep(0.05)

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS for the function process")

    @contextmanager
    def rss_growth(self) -> Iterator[dict]:
        """Samples VmRSS every 5 ms while the block runs; `growth_mb` is the peak above the start."""
        result: dict = {"baseline_kb": self.rss_kb()}
        peak = [result["baseline_kb"]]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], self.rss_kb())
                stop.wait(0.005)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            yield result
        finally:
            stop.set()
            sampler.join(5)
            peak[0] = max(peak[0], self.rss_kb())
            result["peak_kb"] = peak[0]
            result["growth_mb"] = (peak[0] - result["baseline_kb"]) / 1024

    def alive(self) -> bool:
        return self.process.poll() is None


# --- a database with one tenant, and calls to it --------------------------------------------

def attack_database(pg_server: EmbeddedPostgres, name: str, *, before_settings_rules=None) -> str:
    """A new database with every migration applied; `before_settings_rules(url)` runs on it before
    the migration that puts constraints on tenant_agents (rows it writes are kept, NOT VALID)."""
    url = create_database(pg_server.url(), name)
    apply_local_bootstrap(url)
    if before_settings_rules is not None:
        assert (MIGRATIONS / SETTINGS_RULES_MIGRATION).exists()
        earlier = sorted(path for path in MIGRATIONS.glob("*.sql") if path.name < SETTINGS_RULES_MIGRATION)
        staging = Path(tempfile.mkdtemp(prefix=f"{name}-migrations-"))
        for path in earlier:
            (staging / path.name).write_text(path.read_text())
        push(url, staging)
        before_settings_rules(url)
    push(url, MIGRATIONS)
    return url


def add_tenant_number(db_url: str, name: str, number: str, **agent: object) -> str:
    """A tenant owning `number`, with a tenant_agents row of `agent` (column: value); its id."""
    with connect(db_url) as conn:
        tenant = tenants.add_tenant(conn, name)
        tenants.add_number(conn, number, tenant.id)
        if agent:
            columns = ", ".join(agent)
            marks = ", ".join("%s::jsonb" if column == "turn_detection" else "%s" for column in agent)
            values = [json.dumps(v) if column == "turn_detection" else v for column, v in agent.items()]
            conn.execute(f"insert into tenant_agents (tenant_id, {columns}) values (%s, {marks})",
                         (tenant.id, *values))
    return str(tenant.id)


def short_call_script() -> list:
    """Hear the greeting, say one short sentence, hear the answer, hang up: ~3 s, three turns."""
    return [WaitForReply(start_within=5.0, quiet=0.5), Play(_tone(0.6), "question"),
            WaitForReply(start_within=5.0, quiet=0.5), Silence(0.2), HangUp()]


async def place_calls(function: FunctionUnderAttack, number: str, count: int,
                      call_sids: list[str] | None = None) -> list[CallReport]:
    """`count` simulated calls at once, each request on its own connection as Twilio makes them."""
    async with httpx.AsyncClient(timeout=20, limits=httpx.Limits(max_keepalive_connections=0)) as http:
        calls = []
        for index in range(count):
            options = CallOptions(function_url=function.public_url, auth_token=AUTH_TOKEN, to_number=number)
            if call_sids is not None:
                options.call_sid = call_sids[index]
            calls.append(place_call_async(options, short_call_script(), http=http))
        return await asyncio.gather(*calls)


def webhook(function: FunctionUnderAttack, call_sid: str, number: str, status: str = "ringing") -> httpx.Response:
    """The voice webhook exactly as Twilio posts it for `call_sid`, correctly signed."""
    options = CallOptions(function_url=function.public_url, auth_token=AUTH_TOKEN, to_number=number,
                          call_sid=call_sid)
    params = twilio_call_params(options, status)
    return httpx.post(function.public_url, data=params, timeout=10,
                      headers={"X-Twilio-Signature": sign(AUTH_TOKEN, function.public_url, params)})


def stream_upgrade_headers(function: FunctionUnderAttack) -> dict[str, str]:
    """The upgrade signature is over the fixed stream URL only: anyone who saw one has them all."""
    return {"X-Twilio-Signature": sign(AUTH_TOKEN, function.stream_url, {})}


def stored_turn_roles(db_url: str, call_sid: str) -> tuple[str | None, list[str]]:
    with connect(db_url) as conn:
        row = conn.execute("select status from calls where call_sid = %s", (call_sid,)).fetchone()
        turns = conn.execute("select role from call_turns where call_sid = %s order by seq", (call_sid,)).fetchall()
    return (row[0] if row else None), [turn[0] for turn in turns]


# --- fixtures (imported by each attack module) ---------------------------------------------

@pytest.fixture(scope="module")
def peer():
    with RealtimePeer(PeerBehaviour(api_keys=frozenset({MODEL_KEY}))) as running:
        yield running


@pytest.fixture(scope="module")
def attack_db(pg_server: EmbeddedPostgres, request: pytest.FixtureRequest) -> str:
    return attack_database(pg_server, "a_" + request.module.__name__.rsplit(".", 1)[-1][-50:])


@pytest.fixture(scope="module")
def function(attack_db: str, peer: RealtimePeer) -> Iterator[FunctionUnderAttack]:
    running = FunctionUnderAttack(attack_db, peer.url)
    yield running
    running.kill()


@pytest.fixture(scope="module")
def good_number(attack_db: str) -> str:
    number = "+15555550142"
    add_tenant_number(attack_db, "Attack suite tenant", number, greeting=GREETING, turn_detection=TURN_DETECTION)
    return number
