"""The whole call on one machine: `supactl dev` in the background (embedded Postgres, the function on
real Deno, the loopback model), `supactl call` with the bundled sample, rows checked under RLS; the
same with the model unreachable; and `supactl dev` leaves no process behind on SIGTERM / SIGINT."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from supactl.database.call_log import CallNotFound, PostgresCallLog
from supactl.database.connection import connect
from supactl.database.jwt_tokens import tenant_token
from supactl.simulator import audio
from supactl.dev_stack.stack import read_dev_env

pytestmark = pytest.mark.slow
START_TIMEOUT_S = 240


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DevProcess:
    """`supactl dev` as a user runs it, in its own process group, output collected."""

    def __init__(self, project: Path, env_overrides: dict[str, str | None]) -> None:
        env = dict(os.environ)
        for name in ("OPENAI_API_KEY", "OPENAI_REALTIME_URL", "TWILIO_AUTH_TOKEN", "SUPABASE_DB_URL"):
            env.pop(name, None)
        env.update({k: v for k, v in env_overrides.items() if v is not None})
        self.project = project
        self.port = _free_port()
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "supactl", "dev", "--port", str(self.port), "--workdir", str(project)],
            cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._collect, daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not any(line.startswith("ready:") for line in self.lines):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError("supactl dev did not start:\n" + "\n".join(self.lines[-60:]))
            time.sleep(0.2)
        self.env = read_dev_env(project)

    def _collect(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def started_pids(self) -> list[int]:
        """Every process this dev started: its descendants and the Postgres server it launched."""
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                children.setdefault(ppid, []).append(int(entry.name))
        found, todo = [], [self.process.pid]
        while todo:
            pid = todo.pop()
            for child in children.get(pid, []):
                found.append(child)
                todo.append(child)
        postmaster = self.project / ".supactl" / "postgres" / "pgdata" / "postmaster.pid"
        if postmaster.exists():
            found.append(int(postmaster.read_text().split()[0]))
        return found

    def stop(self, sig: int) -> int:
        self.process.send_signal(sig)
        return self.process.wait(60)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _call(project: Path, *args: str, exit_code: int = 0, dev: DevProcess | None = None) -> dict:
    result = subprocess.run([sys.executable, "-m", "supactl", "call", "--json", *args], cwd=project,
                            capture_output=True, text=True, timeout=120,
                            env={k: v for k, v in os.environ.items() if k != "TWILIO_AUTH_TOKEN"})
    # With the dev stack's own log, a failed call says what the function was doing.
    served = "\n--- supactl dev, last lines:\n" + "\n".join(dev.lines[-40:]) if dev else ""
    assert result.returncode == exit_code, result.stdout + result.stderr + served
    parsed = json.loads(result.stdout)
    assert parsed["ok"] is (exit_code == 0)
    return parsed if exit_code == 0 else parsed["report"]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("project")


@pytest.fixture(scope="module")
def loopback_dev(project):
    dev = DevProcess(project, {})
    yield dev
    dev.kill()


def test_call_through_the_real_function_is_stored_and_visible_only_to_its_tenant(loopback_dev, project):
    report = _call(project)
    print("\nloopback call report:", json.dumps({k: report[k] for k in (
        "latencies_ms", "latency_p50_ms", "latency_max_ms", "frames_sent", "frames_received",
        "marks_received", "marks_echoed", "clears")}))
    assert report["ended_by"] == "caller" and report["streams"] == 1
    assert report["frames_received"] > 50 and report["marks_echoed"] >= 1
    assert report["latencies_ms"] and report["protocol_errors"] == []

    env = loopback_dev.env
    as_demo = PostgresCallLog(env["SUPABASE_DB_URL"], env["SUPACTL_DEMO_JWT"], env["SUPACTL_JWT_SECRET"])
    call, turns = as_demo.call_with_turns(report["call_sid"])
    assert call.status == "completed" and call.ended_at is not None
    assert call.tenant_id == env["SUPACTL_DEMO_TENANT_ID"] and call.to_number == env["SUPACTL_DEMO_NUMBER"]
    roles = [t.role for t in turns]
    assert "user" in roles and "assistant" in roles
    assert [t.seq for t in turns] == sorted(t.seq for t in turns)
    assert all(t.text.startswith("[loopback]") for t in turns)
    assert [t["text"] for t in report["transcript"]] == [t.text for t in turns]

    with connect(env["SUPABASE_DB_URL"]) as conn:
        other = conn.execute("insert into tenants (name) values ('Other tenant') returning id::text").fetchone()[0]
    as_other = PostgresCallLog(env["SUPABASE_DB_URL"], tenant_token(other, env["SUPACTL_JWT_SECRET"], subject="o"))
    assert as_other.list_calls() == []
    with pytest.raises(CallNotFound):
        as_other.call_with_turns(report["call_sid"])


# The loopback model ends the caller's turn after this much silence (its server_vad default, which
# the function leaves as it is): the caller counts it, the bridge starts at speech_stopped.
VAD_SILENCE_MS = 500
# The simulator paces 20 ms frames; on top of one frame, the sockets and scheduling of a loaded
# 2-core machine between the caller's clock and the bridge's.
AGREEMENT_TOLERANCE_MS = audio.FRAME_MS + 60


def test_calls_stats_and_show_agree_with_the_callers_latency_and_price_the_stored_usage(loopback_dev, project):
    from supactl.database.call_costs import call_cost, load_price_table
    from supactl.database.call_stats import duration_s, median

    report = _call(project)
    env = loopback_dev.env
    token = env["SUPACTL_DEMO_JWT"]
    call, _ = PostgresCallLog(env["SUPABASE_DB_URL"], token, env["SUPACTL_JWT_SECRET"]).call_with_turns(
        report["call_sid"])
    bridge = [t["firstAudioSentMs"] for t in call.metrics["turns"]]
    caller = report["latencies_ms"]
    print("\ncaller-side latencies (ms):", [round(v) for v in caller],
          "\nbridge latencies + VAD silence (ms):", [b + VAD_SILENCE_MS for b in bridge])
    assert caller and len(bridge) == len(caller)
    for heard, measured in zip(caller, bridge):
        assert abs(heard - (measured + VAD_SILENCE_MS)) <= AGREEMENT_TOLERANCE_MS
    played = [t["firstAudioPlayedMs"] for t in call.metrics["turns"]]
    assert all(p is not None and p >= s for p, s in zip(played, bridge))
    assert call.metrics["audio_in_ms"] == report["frames_sent"] * audio.FRAME_MS

    def cli(*args: str) -> dict:
        done = subprocess.run([sys.executable, "-m", "supactl", "calls", *args, "--jwt", token, "--json"],
                              cwd=project, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout)

    figures = cli("show", report["call_sid"])["figures"]
    assert figures["first_audio_sent_ms"] == {"p50": median(bridge), "max": max(bridge)}
    assert abs(figures["first_audio_sent_ms"]["p50"] + VAD_SILENCE_MS - report["latency_p50_ms"]) <= \
        AGREEMENT_TOLERANCE_MS
    expected = call_cost(call.usage, call.metrics["model"], duration_s(call), load_price_table(environ={}))
    assert call.usage.get("output_tokens", 0) > 0
    assert figures["cost"]["total_usd"] == pytest.approx(expected.total_usd)
    stats = cli("stats", "--since", "1h")
    every = [t["firstAudioSentMs"] for c in PostgresCallLog(env["SUPABASE_DB_URL"], token, env["SUPACTL_JWT_SECRET"])
             .list_calls(limit=1000) for t in c.metrics.get("turns", [])]
    assert stats["first_audio_sent_ms"]["p50"] == median(every) and stats["turns_measured"] == len(every)


def test_barge_in_clears_the_reply_and_stores_the_assistant_turn_as_interrupted(loopback_dev, project):
    report = _call(project, "--barge-in")
    print("\nbarge-in call latencies (ms):", [round(v) for v in report["latencies_ms"]])
    assert report["clears"] >= 1 and report["ended_by"] == "caller"
    _, turns = PostgresCallLog(loopback_dev.env["SUPABASE_DB_URL"]).call_with_turns(report["call_sid"])
    assistant = [t for t in turns if t.role == "assistant"]
    assert assistant[0].interrupted and not assistant[-1].interrupted
    assert [t.role for t in turns] == ["user", "assistant", "user", "assistant"]


def test_dev_stops_every_process_it_started_on_sigterm(loopback_dev, project):
    pids = loopback_dev.started_pids()
    assert len(pids) >= 2  # Deno and Postgres at least
    assert loopback_dev.stop(signal.SIGTERM) == 0
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [pid for pid in pids if _alive(pid)] == []
    assert (project / ".supactl" / "postgres" / "pgdata" / "PG_VERSION").exists()  # the data stays


def test_unreachable_model_ends_with_the_apology_and_a_failed_call_on_sigint(project):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead_port = closed.getsockname()[1]  # bound, never listening: connections are refused
        dev = DevProcess(project, {"OPENAI_API_KEY": "sk-test-unreachable-model-key",
                                   "OPENAI_REALTIME_URL": f"ws://127.0.0.1:{dead_port}/v1/realtime"})
        try:
            report = _call(project, exit_code=5)  # a smoke test that got no reply has failed
            assert report["ended_by"] == "function"
            assert report["says"] and report["frames_received"] == 0
            call, turns = PostgresCallLog(dev.env["SUPABASE_DB_URL"]).call_with_turns(report["call_sid"])
            assert call.status == "failed" and turns == []
            pids = dev.started_pids()
            assert dev.stop(signal.SIGINT) == 130
            time.sleep(0.5)
            assert [pid for pid in pids if _alive(pid)] == []
            assert "sk-test-unreachable-model-key" not in "\n".join(dev.lines)
        finally:
            dev.kill()


def test_dev_demo_places_one_call_prints_it_and_stops(project):
    result = subprocess.run(
        [sys.executable, "-m", "supactl", "dev", "--demo", "--port", str(_free_port()), "--workdir", str(project)],
        cwd=project, capture_output=True, text=True, timeout=START_TIMEOUT_S,
        env={k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_REALTIME_URL")},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "reply latency" in result.stdout and "p50" in result.stdout
    assert "[loopback] playing back your" in result.stdout
    assert "function | stopped" in result.stdout
    assert "try, in this folder" not in result.stdout  # nothing runs to try once --demo has stopped
    assert result.stdout.rstrip().endswith("keeps it running for `supactl call`")
    assert "RuntimeDirWarning" not in result.stderr
    postmaster = project / ".supactl" / "postgres" / "pgdata" / "postmaster.pid"
    assert not postmaster.exists()  # the Postgres it started is stopped; the data stays


def test_a_killed_dev_leaves_nothing_dev_stop_cannot_clean_up(project):
    """Issue 14, problem 10: after kill -9 of `supactl dev`, Postgres and Deno kept running."""
    dev = DevProcess(project, {})
    pids = dev.started_pids()
    try:
        status = subprocess.run([sys.executable, "-m", "supactl", "dev", "status", "--json"], cwd=project,
                                capture_output=True, text=True, timeout=60)
        assert status.returncode == 0 and json.loads(status.stdout)["pid"] == dev.process.pid
        dev.process.kill()  # SIGKILL to supactl only: its children are left behind
        dev.process.wait(10)
        assert [pid for pid in pids if _alive(pid)] != []
        stopped = subprocess.run([sys.executable, "-m", "supactl", "dev", "stop", "--json"], cwd=project,
                                 capture_output=True, text=True, timeout=60)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert "Postgres" in json.loads(stopped.stdout)["stopped"]
        time.sleep(0.5)
        assert [pid for pid in pids if _alive(pid)] == []
        assert "RuntimeDirWarning" not in stopped.stderr + "\n".join(dev.lines)
    finally:
        dev.kill()


def test_ctrl_c_exits_130_and_prints_nothing_from_child_processes(project):
    dev = DevProcess(project, {})
    lines_before = len(dev.lines)
    assert dev.stop(signal.SIGINT) == 130
    time.sleep(0.3)
    after = dev.lines[lines_before:]
    assert all(line.split("|")[0].strip() in ("function", "postgres", "model", "dev") for line in after), after
