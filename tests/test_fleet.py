"""A fleet behind a real load balancer: Debian's HAProxy in front of workers run from the runtime
bundle (`supactl selfhost build`'s launcher, what the container runs), real Postgres, the loopback
Realtime peer, and simulated calls that follow Twilio's <Connect action>. The workers are rolled one
by one (start a replacement, SIGTERM the old one: it drains), and every call must survive with
every turn stored once. Then one new worker is killed (-9, no drain): each of its calls must resume
on a live worker once the dead worker's lease lapses (docs/self-hosting.md, "Crashes").

HAProxy checks `/readyz` every 200 ms, so a draining worker leaves rotation within a check."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from supactl.database import tenants
from supactl.database.connection import connect
from supactl.dev_stack.realtime_peer import PeerBehaviour, RealtimePeer
from supactl.project_files import bundled_function_dir
from supactl.selfhost.deno_release import shipped_deno, user_cache_dir
from supactl.selfhost.runtime_bundle import LAUNCHER, build_bundle
from supactl.simulator.call_script import HangUp, Play, Silence, WaitForReply
from supactl.simulator.simulated_call import CallOptions, CallReport, place_call_async

from tests.test_e2e_handoff import FunctionProcess, _free_port, _tone

pytestmark = pytest.mark.slow

AUTH_TOKEN = "fleet-test-auth-token"
MODEL_KEY = "sk-fleet-test"
CALLS = 30
WORKERS = 3
TURNS = 8
TURN_DETECTION = {"type": "server_vad", "silence_duration_ms": 200}


def _haproxy() -> str:
    found = shutil.which("haproxy") or next((p for p in ("/usr/sbin/haproxy",) if os.path.exists(p)), None)
    if found is None:
        pytest.skip("haproxy is not installed (.ci/run installs Debian's package: apt-get install haproxy)")
    return found


class Worker(FunctionProcess):
    """The bundle's launcher, as the container runs it, with a fleet's settings (no wall clock)."""

    def __init__(self, launcher: Path, port: int, public_url: str, db_url: str, realtime_url: str) -> None:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PORT": str(port), "HOST": "127.0.0.1",
            "PUBLIC_URL": public_url, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "OPENAI_API_KEY": MODEL_KEY,
            "OPENAI_REALTIME_URL": realtime_url, "TURN_STORE": "postgres", "SUPABASE_DB_URL": db_url,
            "WALL_CLOCK_LIMIT_S": "0",
        }
        self._start(port, [str(launcher)], env)


def _haproxy_config(front: int, slots: list[int]) -> str:
    servers = "\n".join(f"    server w{i} 127.0.0.1:{port} check inter 200ms fall 1 rise 1"
                        for i, port in enumerate(slots))
    return f"""global
    maxconn 1000
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h
    # A worker that has just exited refuses the connection (or cut its answer short, which HAProxy
    # reports as 502), and a draining one refuses a media stream (503) until the next check takes
    # it out of rotation: try the request on another. Twilio's requests here are safe to repeat (a
    # connect action mints at most a stream token its claim accepts once).
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response junk-response 503
frontend fleet
    bind 127.0.0.1:{front}
    default_backend workers
backend workers
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
{servers}
"""


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """What `supactl selfhost build` makes and the Containerfile runs: on the shipped Deno release."""
    return build_bundle(tmp_path_factory.mktemp("fleet") / "bundle", bundled_function_dir(),
                        shipped_deno(user_cache_dir()))


@pytest.fixture(scope="module")
def fleet_run(bundle, db_url, tmp_path_factory) -> dict:
    """One roll of the fleet with 30 calls in flight; the tests below read what it left."""
    tmp_path = tmp_path_factory.mktemp("haproxy")
    haproxy = _haproxy()
    front = _free_port()
    slots = [_free_port() for _ in range(WORKERS * 2)]
    public_url = f"http://127.0.0.1:{front}/functions/v1/twilio-voice"
    config = tmp_path / "haproxy.cfg"
    config.write_text(_haproxy_config(front, slots))
    with connect(db_url) as conn:
        tenant = tenants.add_tenant(conn, "Fleet tenant")
        number = "+15555550188"
        tenants.add_number(conn, number, tenant.id)
        conn.execute("insert into tenant_agents (tenant_id, turn_detection) values (%s, %s)",
                     (tenant.id, json.dumps(TURN_DETECTION)))
    launcher = bundle.root / LAUNCHER
    workers: dict[int, Worker] = {}
    balancer = subprocess.Popen([haproxy, "-f", str(config), "-db"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    with RealtimePeer(PeerBehaviour(api_keys=frozenset({MODEL_KEY}))) as peer:
        try:
            for slot in range(WORKERS):
                workers[slot] = Worker(launcher, slots[slot], public_url, db_url, peer.url)
            time.sleep(1.0)  # a few health checks: every worker in rotation

            script: list = [WaitForReply(start_within=10.0)]
            for _ in range(TURNS):
                script += [Play(_tone(0.5), "question"), WaitForReply(start_within=10.0, quiet=0.4), Silence(0.5)]
            script.append(HangUp())
            reports: list[CallReport] = []

            async def calls() -> None:
                import httpx

                async with httpx.AsyncClient(timeout=15, limits=httpx.Limits(max_keepalive_connections=0)) as http:
                    async def one(index: int) -> CallReport:
                        await asyncio.sleep(index * 0.1)
                        options = CallOptions(function_url=public_url, auth_token=AUTH_TOKEN, to_number=number)
                        return await place_call_async(options, script, http=http)

                    reports.extend(await asyncio.gather(*(one(i) for i in range(CALLS))))

            caller = threading.Thread(target=lambda: asyncio.run(calls()))
            started = time.monotonic()
            caller.start()
            time.sleep(6.0)
            drains: list[dict] = []
            for slot in range(WORKERS):
                replacement = WORKERS + slot
                workers[replacement] = Worker(launcher, slots[replacement], public_url, db_url, peer.url)
                time.sleep(0.6)
                old = workers[slot]
                old.process.send_signal(signal.SIGTERM)
                assert old.process.wait(40) == 0
                [drained] = old.events("worker.drained")
                drains.append(drained)
                time.sleep(1.0)
            # Then one of the new workers dies without draining: its calls must resume elsewhere
            # once its lease lapses (crash_resume.ts).
            victim = workers[WORKERS]
            killed_at = time.monotonic()
            victim.process.kill()
            victim.process.wait(10)
            caller.join(150)
            assert not caller.is_alive(), "calls did not finish"
            elapsed = time.monotonic() - started

            rows = []
            for report in reports:
                with connect(db_url) as conn:
                    call = conn.execute("select status, handoff_count from calls where call_sid = %s",
                                        (report.call_sid,)).fetchone()
                    turns = conn.execute("select seq, role from call_turns where call_sid = %s order by seq",
                                         (report.call_sid,)).fetchall()
                gaps = [None if h.gap_ms is None else round(h.gap_ms) for h in report.handoffs]
                rows.append((report, call, turns, gaps))
            calls_moved = [d["active_calls"] for w in range(WORKERS) for d in workers[w].events("worker.drain_started")]
            # Each call waits for its quiet moment: how long after SIGTERM each one moved.
            waits = []
            for slot in range(WORKERS):
                drain_at = workers[slot].events("worker.drain_started")[0]["_at"]
                waits.append(sorted(round((line["_at"] - drain_at) * 1000) for line in workers[slot].events("call.handoff")))
            forced = sum(len(workers[slot].events("call.drain_forced")) for slot in range(WORKERS))
            print(f"\nfleet: {CALLS} calls, {WORKERS} workers rolled in {elapsed:.1f} s; drain ms:",
                  [d["drain_ms"] for d in drains], "calls handed off per drain:", calls_moved)
            print("  ms from SIGTERM to each call's handoff, per drain (median, max):",
                  [(w[len(w) // 2], w[-1]) if w else None for w in waits], "forced after the quiet wait:", forced)
            for report, call, turns, gaps in rows:
                print(f"  {report.call_sid[:10]} ended_by={report.ended_by} streams={report.streams} "
                      f"gaps_ms={gaps} user_turns_stored={[r for _, r in turns].count('user')}/{TURNS} spoken "
                      f"turns_stored={len(turns)} status={call[0] if call else None}")
            late = {}
            refused = {}
            for slot in range(WORKERS):
                worker = workers[slot]
                # Lines in the order the worker wrote them: everything after its drain began.
                after = worker.lines[worker.lines.index(worker.events("worker.drain_started")[0]) + 1:]
                late[slot] = [line for line in after if line.get("event") in ("call.answered", "stream.accepted")]
                # A stream that reached the worker before the balancer's next /readyz check: refused
                # (503), and HAProxy retries it on a ready worker (every call's survival is asserted).
                refused[slot] = sum(line.get("event") == "stream.refused_draining" for line in after)
            print("  streams a draining worker refused (retried elsewhere), per drain:", list(refused.values()))
            live = [workers[slot] for slot in range(WORKERS + 1, WORKERS * 2)]
            on_victim = {line["call_sid"] for line in victim.lines if line.get("event") == "model.ready"}
            resumed = {line["call_sid"]: line for worker in live for line in worker.events("call.crash_resumed")}
            # The silence a crashed call's caller hears: the kill → the new stream's model ready.
            resume_gaps = {
                sid: round((min(line["_at"] for worker in live for line in worker.events("model.ready")
                                if line.get("call_sid") == sid and line["_at"] > killed_at) - killed_at) * 1000)
                for sid in resumed}
            print(f"  kill -9 of one worker: {len(on_victim)} calls on it, {len(resumed)} resumed; "
                  "connect action's wait for the lease (ms):", sorted(line["waited_ms"] for line in resumed.values()),
                  "kill → model ready on the new worker (ms):", sorted(resume_gaps.values()),
                  "caller turns stored on those calls:",
                  sorted([r for _, r in turns].count("user") for report, _, turns, _ in rows if report.call_sid in on_victim))
            return {"rows": rows, "drains": drains, "late": late, "on_victim": on_victim, "resumed": resumed}
        finally:
            for worker in workers.values():
                worker.kill()
            balancer.kill()
            balancer.wait(10)


def test_a_rolling_restart_behind_haproxy_drops_no_call(fleet_run):
    for report, call, turns, _ in fleet_run["rows"]:
        assert report.ended_by == "caller" and report.protocol_errors == [], report
        assert call == ("completed", report.streams - 1), "the call survived every drain it met"
        assert [seq for seq, _ in turns] == list(range(len(turns))), "no turn duplicated, no seq skipped"
    assert sum(len(report.handoffs) for report, *_ in fleet_run["rows"]) >= WORKERS
    assert all(drain["turn_store_pending"] == 0 for drain in fleet_run["drains"])
    assert fleet_run["late"] == {slot: [] for slot in range(WORKERS)}, "a draining worker got a new call"


# A drain moves each call at its quiet moment (nobody speaking, nothing on its way to the store):
# a caller's sentence is never cut by the move. When the drain handed off at once, 1-4 calls of 30
# stored 7 of 8 caller turns here.
def test_a_rolling_restart_behind_haproxy_stores_every_spoken_turn(fleet_run):
    for report, _, turns, _ in fleet_run["rows"]:
        stored = [role for _, role in turns].count("user")
        if report.call_sid in fleet_run["on_victim"]:
            # A crash may lose the sentence being spoken when the worker died, never duplicate one.
            assert stored <= TURNS, report.call_sid
        else:
            assert stored == TURNS, report.call_sid


def test_every_call_on_a_killed_worker_resumes_once_from_its_stored_turns(fleet_run):
    assert fleet_run["on_victim"], "the killed worker served calls"
    assert set(fleet_run["resumed"]) == fleet_run["on_victim"], "each resumed, by a live worker"
    for report, call, turns, _ in fleet_run["rows"]:
        if report.call_sid in fleet_run["on_victim"]:
            assert report.ended_by == "caller" and call == ("completed", report.streams - 1), report
            assert [seq for seq, _ in turns] == list(range(len(turns))), "no turn duplicated, no seq skipped"
