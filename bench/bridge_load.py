"""Bridge load: how many concurrent calls one Deno process relays, and what each frame costs.

For each target (the twilio-voice function, and bench/minimal_relay.ts as the floor), each Deno
runtime (the pinned test wheel and the release shipped for self-hosting) and each N, a fresh
server process is pinned to one core and bench/loadgen.ts (N simulated Twilio streams at real
time plus the fast Realtime peer, one Deno process, always on the pinned Deno: it is the
measuring instrument, so it stays the same across runtimes) to the other. Calls start gradually, run
`warm_s`, then a steady window of `window_s` is measured:

- per-frame latency through the server, caller->model (timed at the peer) and model->caller
  (timed at the stream), from timestamps carried in the audio payload;
- frames lost (sent in the window, not through within `GRACE_S`);
- CPU seconds of the server process per call-minute (/proc/PID/stat, all threads), memory (RSS)
  per call, and the load side's own CPU share of its core.

On this shared 2-core machine one window's CPU per call-minute varies by about ±10 % between runs of the
same server at the same N, more than the bridge/relay difference being measured. `--repeats K` runs each
(N, runtime) K times, the targets taking turns (bridge, relay, relay_nodelay, bridge, relay, ...) so that a
slow drift of the machine falls on all of them alike. "runs" keeps every run (with its "repeat"); "levels"
holds one level per (runtime, target, N): the median run's, whole (the run whose CPU per call-minute is the
median, the lower-middle one for an even K, so its latency and CPU come from the same process), with every
run's CPU ("cpu_s_per_call_minute_runs") and their spread ("cpu_spread_pct", (max - min) / median). A target
stops after the level where its median run broke, or where any of its runs crashed.

    python -m bench.bridge_load --levels 10 100 --window 20 --runtimes pinned shipped --repeats 3

`--baseline REF` adds "bridge_before", the function as of git REF of this checkout, to the same run (and to
the profile): a change to the hot path measured before and after against the same relay and machine.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import psycopg

from supactl.database.connection import apply_local_bootstrap
from supactl.database.migrations import push
from supactl.database.tenants import add_number, add_tenant
from supactl.dev_stack.deno_runtime import deno_binary, deno_env
from supactl.dev_stack.postgres_server import EmbeddedPostgres, create_database
from supactl.project_files import bundled_function_dir, bundled_migrations_dir
from supactl.selfhost.deno_release import shipped_deno, user_cache_dir

BENCH_DIR = Path(__file__).resolve().parent
# 100, 200 and 400 are the levels issue 15 (item 6) asks for.
LEVELS = (10, 100, 200, 400, 1000)
TARGETS = ("bridge", "relay", "relay_nodelay")
# "bridge_before" is the function as of --baseline REF: only with a baseline, never by default.
ALL_TARGETS = (*TARGETS, "bridge_before")
# The Deno a server target runs on, by the name --runtimes takes: the test wheel (2.4.5, kept like
# Supabase's runtime) and the release a self-hosted worker ships (deno_release.py says why they differ).
RUNTIMES: dict[str, Callable[[], Path]] = {
    "pinned": deno_binary,
    "shipped": lambda: shipped_deno(user_cache_dir()),
}
RUNTIME_ROLES = {"pinned": "the test wheel", "shipped": "the release shipped for self-hosting"}
# On 2.8.3 an attached inspector is sent every WebSocket frame (op_inspector_emit_protocol_event, half
# of the profile's samples at 100 calls), so the hot path is profiled on the pinned runtime.
PROFILE_RUNTIME = "pinned"
TARGET_LABELS = {
    "bridge": "twilio-voice function",
    "bridge_before": "twilio-voice function as of --baseline",
    "relay": "minimal relay (Deno.serve)",
    "relay_nodelay": "minimal relay, Twilio side on a TCP_NODELAY socket",
}
FUNCTION_PATH = "/functions/v1/twilio-voice"
GRACE_S = 2
# A level past which the next ones only measure a collapse: stop that target there.
BROKEN_LOSS = 0.05
AUTH_TOKEN = "bench-twilio-auth-token-0123456789"
TO_NUMBER = "+15005550101"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    pass


@dataclass
class Database:
    url: str
    to_number: str


@dataclass(frozen=True)
class Runtime:
    """A Deno binary, with the label the report shows for it ("deno 2.8.3")."""

    label: str
    binary: Path


def resolve_runtime(name: str) -> Runtime:
    binary = RUNTIMES[name]()
    # The label comes from the binary ("deno 2.8.3 (stable, ...)"), so it names what really ran.
    version = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=True,
                             timeout=60).stdout.split()[:2]
    return Runtime(" ".join(version), binary)


def prepare_database(server: EmbeddedPostgres) -> Database:
    """A database with the schema, one tenant and the number the simulated calls dial."""
    url = create_database(server.url(), "bridge_bench")
    apply_local_bootstrap(url)
    push(url, bundled_migrations_dir())
    with psycopg.connect(url, autocommit=True) as conn:
        tenant = add_tenant(conn, "Bench Dental")
        add_number(conn, TO_NUMBER, tenant.id)
    return Database(url, TO_NUMBER)


_handed_out: set[int] = set()


def free_port() -> int:
    """A free local port: any, or the next free one in BENCH_PORTS ("first-last") on a shared machine."""
    span = os.environ.get("BENCH_PORTS")
    candidates = [0] if not span else range(int(span.split("-")[0]), int(span.split("-")[1]) + 1)
    for candidate in candidates:
        if candidate in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            port = sock.getsockname()[1]
        if span:
            _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in BENCH_PORTS={span}")


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process, all threads."""
    # Fields after the ")" of comm: utime and stime are the 12th and 13th (man 5 proc).
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / _CLOCK_TICKS, int(fields[12]) / _CLOCK_TICKS



def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pinned(argv: list[str], core: int) -> list[str]:
    """Pin to one core when there are two to split (server on one, load side on the other)."""
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", str(core), *argv]
    return argv


def _wait_listening(process: subprocess.Popen, port: int, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"the server exited during start (code {process.returncode}):\n{_tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise BenchError(f"the server did not listen on {port} within {timeout:.0f} s:\n{_tail(log)}")


def _tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


def export_function(ref: str, into: Path) -> Path:
    """The function as it was at git `ref` of this checkout, written under `into`: the "before" of a
    before-and-after run, served by the same bench as the current one."""
    repo = BENCH_DIR.parent
    inside = "supabase/functions/twilio-voice"
    done = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", ref, inside], capture_output=True,
                          timeout=120)
    if done.returncode != 0:
        raise BenchError(f"--baseline {ref}: git archive failed: {done.stderr.decode(errors='replace').strip()}")
    target = into / f"baseline-{ref.replace('/', '_')}"
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as archive:
        # Our own commit's files; still no path outside `target` (the data filter, where Python has it).
        archive.extractall(target, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    return target / inside


def server_command(target: str, deno_path: Path, inspect_port: int | None = None,
                   baseline_dir: Path | None = None) -> tuple[list[str], Path]:
    deno = str(deno_path)
    inspect = [f"--inspect=127.0.0.1:{inspect_port}"] if inspect_port else []
    if target in ("bridge", "bridge_before"):
        if target == "bridge_before" and baseline_dir is None:
            raise BenchError("bridge_before needs --baseline REF: the commit whose function it runs")
        folder = baseline_dir if target == "bridge_before" else bundled_function_dir()
        if not (folder / "index.ts").is_file():
            raise BenchError(f"{folder}/index.ts does not exist: the function cannot be benchmarked")
        return [deno, "run", "-A", "--no-prompt", *inspect, "--config", str(folder / "deno.json"),
                str(folder / "index.ts")], folder
    if target in ("relay", "relay_nodelay"):
        return [deno, "run", "-A", "--no-prompt", *inspect, str(BENCH_DIR / "minimal_relay.ts")], BENCH_DIR
    raise BenchError(f"unknown target {target!r}: use one of {', '.join(TARGETS)}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_level(target: str, runtime: Runtime, calls: int, db: Database, workdir: Path, *, ramp_per_s: float = 50,
              warm_s: float = 5, window_s: float = 20, profile_to: Path | None = None,
              baseline_dir: Path | None = None) -> dict:
    """One server process on `runtime`, one load process, one steady window; returns what was measured."""
    server_port, peer_port = free_port(), free_port()
    inspect_port = free_port() if profile_to else None
    try:
        return _run_level_on(target, runtime, calls, db, workdir, server_port, peer_port, inspect_port,
                             ramp_per_s=ramp_per_s, warm_s=warm_s, window_s=window_s, profile_to=profile_to,
                             baseline_dir=baseline_dir)
    finally:
        # A BENCH_PORTS range serves a whole run of many levels: its ports are lent, not given.
        _handed_out.difference_update({server_port, peer_port, inspect_port})


def _run_level_on(target: str, runtime: Runtime, calls: int, db: Database, workdir: Path, server_port: int,
                  peer_port: int, inspect_port: int | None, *, ramp_per_s: float, warm_s: float, window_s: float,
                  profile_to: Path | None, baseline_dir: Path | None) -> dict:
    argv, cwd = server_command(target, runtime.binary, inspect_port, baseline_dir)
    function_url = f"http://127.0.0.1:{server_port}{FUNCTION_PATH}"
    env = deno_env({
        "PORT": str(server_port),
        "PUBLIC_URL": function_url,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "OPENAI_API_KEY": "sk-fake-bench-key-not-real",
        "OPENAI_REALTIME_URL": f"ws://127.0.0.1:{peer_port}/v1/realtime",
        "TURN_STORE": "postgres",
        "SUPABASE_DB_URL": db.url,
        # A benchmark call may outlast the default 400 s budget; the bench measures, it does not end calls.
        "WALL_CLOCK_LIMIT_S": "3600",
        "RELAY_TWILIO_SOCKET": "nodelay" if target == "relay_nodelay" else "deno",
    })
    log = workdir / f"{target}-{runtime.label.replace(' ', '-')}-{calls}.log"
    with log.open("wb") as log_file:
        server = subprocess.Popen(pinned(argv, 0), cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                  stdout=log_file, stderr=subprocess.STDOUT)
    load = peer = None
    try:
        _wait_listening(server, server_port, log)
        idle_rss = rss_mb(server.pid)
        peer = _start_load_process("model_peer.ts", {"port": peer_port})
        ready = json.loads(peer.stdout.readline() or "{}")
        if ready.get("phase") != "peer_listening":
            raise BenchError(f"the model peer did not start (code {peer.poll()}):\n" + "".join(peer.errors)[-3000:])
        options = {
            "functionUrl": function_url, "authToken": AUTH_TOKEN, "toNumber": db.to_number, "calls": calls,
            "rampPerSecond": ramp_per_s, "warmSeconds": warm_s, "windowSeconds": window_s,
            "graceSeconds": GRACE_S,
        }
        # The load side is the measuring instrument: the same Deno whatever the server runs on.
        load = _start_load_process("loadgen.ts", options)
        marks: dict[str, dict] = {}
        profiler = None
        result = None
        for line in load.stdout:
            event = json.loads(line)
            phase = event.get("phase")
            if phase in ("window_start", "window_end"):
                marks[phase] = {"at": time.monotonic(), "at_us": event["at_us"], "server_cpu": cpu_times(server.pid),
                                "load_cpu": cpu_times(load.pid), "peer_cpu": cpu_times(peer.pid),
                                "server_rss": rss_mb(server.pid)}
                if profile_to and phase == "window_start":
                    from bench.profile import CpuProfiler

                    profiler = CpuProfiler(inspect_port)
                    profiler.start()
                if profiler and phase == "window_end":
                    profile_to.write_text(json.dumps(profiler.stop()))
            elif phase == "ramped":
                marks["ramped"] = event
            elif phase == "result":
                result = event
        load.wait(timeout=30)
        if result is None or set(marks) < {"window_start", "window_end"}:
            raise BenchError(f"the load generator ended without a result (code {load.returncode}):\n"
                             + "".join(load.errors)[-3000:] + "\n" + _tail(log))
        # The peer times the uplink: it reports the frames sent in the callers' window.
        window = {"start_us": marks["window_start"]["at_us"], "end_us": marks["window_end"]["at_us"]}
        peer.stdin.write(json.dumps({"window": window}) + "\n")
        peer.stdin.flush()
        peer_result = json.loads(peer.stdout.readline() or "{}")
        if peer_result.get("phase") != "result":
            raise BenchError(f"the model peer ended without a result (code {peer.poll()}):\n"
                             + "".join(peer.errors)[-3000:])
        result = _merge_peer(result, peer_result)
        if server.poll() is not None:
            raise BenchError(f"the server died during the run (code {server.returncode}):\n{_tail(log)}")
    finally:
        for process in (load, peer):
            if process is not None and process.poll() is None:
                process.kill()
        _stop(server)
    return {"runtime": runtime.label, **summarize(target, calls, result, marks, idle_rss),
            "server_warnings": server_warnings(log)}


class LoadProcess(subprocess.Popen):
    """A load-side Deno process whose stderr is collected on a thread (so it never blocks on it)."""

    errors: list[str]


def _start_load_process(script: str, options: dict) -> LoadProcess:
    """bench/<script> on the load side's core, with JSON options; JSON lines on its stdout."""
    process = LoadProcess(
        pinned([str(deno_binary()), "run", "-A", "--no-prompt", str(BENCH_DIR / script), json.dumps(options)], 1),
        cwd=BENCH_DIR, env=deno_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    process.errors = []
    threading.Thread(target=lambda: process.errors.extend(process.stderr), daemon=True).start()
    return process


def _merge_peer(result: dict, peer: dict) -> dict:
    """The callers' result with the peer's side of it: the uplink is timed where it arrives."""
    failures = dict(result["failures"])
    for reason, count in peer["failures"].items():
        failures[f"peer:{reason}"] = failures.get(f"peer:{reason}", 0) + count
    return {**result, "uplink": peer["uplink"], "uplink_lost": result["frames_sent"] - peer["uplink_received"],
            "peer_sessions": peer["peer_sessions"], "peer_refused": peer["peer_refused"], "failures": failures}


def server_warnings(log: Path) -> dict[str, int]:
    """Warn/error events in the server's JSON log, by name (a frame the function ignored shows here)."""
    counts: dict[str, int] = {}
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and (entry.get("level") in ("warn", "error") or entry.get("event", "").startswith("relay.bad")):
            name = str(entry.get("event"))
            counts[name] = counts.get(name, 0) + 1
    return counts


def summarize(target: str, calls: int, result: dict, marks: dict, idle_rss: float) -> dict:
    start, end = marks["window_start"], marks["window_end"]
    wall = end["at"] - start["at"]
    server_cpu = sum(end["server_cpu"]) - sum(start["server_cpu"])
    server_system = end["server_cpu"][1] - start["server_cpu"][1]
    load_cpu = sum(end["load_cpu"]) - sum(start["load_cpu"])
    peer_cpu = sum(end["peer_cpu"]) - sum(start["peer_cpu"])
    live = result["calls_live"]
    call_minutes = live * wall / 60
    sent = result["frames_sent"]
    lost = result["uplink_lost"] + result["downlink_lost"]
    per_call_minute = server_cpu / call_minutes if call_minutes else None
    return {
        "target": target,
        "calls": calls,
        "calls_live": live,
        "window_s": round(wall, 2),
        "frames_sent": sent,
        "uplink": result["uplink"],
        "downlink": result["downlink"],
        "round_trip": result["round_trip"],
        "uplink_lost": result["uplink_lost"],
        "downlink_lost": result["downlink_lost"],
        "lost_pct": round(100 * lost / (2 * sent), 3) if sent else None,
        "server_cpu_share": round(server_cpu / wall, 3),
        # Kernel time: mostly loopback TCP, which the sender's syscall carries for both ends.
        "server_system_pct": round(100 * server_system / server_cpu, 1) if server_cpu else None,
        "cpu_s_per_call_minute": round(per_call_minute, 4) if per_call_minute is not None else None,
        "cpu_s_per_400s_call": round(per_call_minute * 400 / 60, 3) if per_call_minute is not None else None,
        "server_rss_mb": round(end["server_rss"], 1),
        "rss_kb_per_call": round((end["server_rss"] - idle_rss) * 1024 / live, 1) if live else None,
        # The load side's core runs the callers (the generator) and the model peer, each measured.
        "load_cpu_share": round(load_cpu / wall, 3),
        "peer_cpu_share": round(peer_cpu / wall, 3),
        "load_core_share": round((load_cpu + peer_cpu) / wall, 3),
        "load_system_pct": round(100 * (end["load_cpu"][1] - start["load_cpu"][1]) / load_cpu, 1) if load_cpu else None,
        "load_scheduling_lag": result["scheduling_lag"],
        "marks_received": result["marks_received"],
        "setup_ramp_s": marks.get("ramped", {}).get("seconds"),
        "failures": result["failures"],
    }


def broken(level: dict) -> bool:
    return level["calls_live"] < level["calls"] * 0.9 or (level["lost_pct"] or 0) > 100 * BROKEN_LOSS


def _cpu_order(level: dict) -> tuple[bool, float]:
    # A run with no call-minute to divide by relayed nothing: it sorts as the costliest.
    value = level["cpu_s_per_call_minute"]
    return value is None, value or 0.0


def median_run(runs: list[dict]) -> dict:
    """The run whose CPU per call-minute is the median (the lower-middle of an even count), whole, with
    every run's CPU and their spread: one real run, so its latency, loss and CPU stay consistent."""
    ordered = sorted(runs, key=_cpu_order)
    chosen = ordered[(len(ordered) - 1) // 2]
    values = [level["cpu_s_per_call_minute"] for level in ordered]
    numbers = [value for value in values if value is not None]
    median = chosen["cpu_s_per_call_minute"]
    spread = round(100 * (max(numbers) - min(numbers)) / median, 1) if median else None
    return {**chosen, "repeats": len(runs), "cpu_s_per_call_minute_runs": values, "cpu_spread_pct": spread}


def run(levels=LEVELS, targets=TARGETS, runtimes=tuple(RUNTIMES), *, window_s: float = 20, warm_s: float = 5,
        ramp_per_s: float = 50, repeats: int = 1, profile_calls: int | None = None, profile_dir: Path | None = None,
        profile_runtime: str = PROFILE_RUNTIME, baseline: str | None = None) -> dict:
    """Every target on every runtime at every level, `repeats` times, interleaved so that machine noise
    falls on all of them alike (a target stops on a runtime after the level where its median run broke
    there, or a run crashed); the bridge is then profiled on `profile_runtime` at `profile_calls`.
    With `baseline` (a git ref), "bridge_before" is the function as of that commit, measured and
    profiled in the same run: the before and the after of a change to the hot path."""
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    if baseline and "bridge_before" not in targets:
        targets = ("bridge", "bridge_before", *(t for t in targets if t not in ("bridge", "bridge_before")))
    if "bridge_before" in targets and not baseline:
        raise BenchError("the bridge_before target needs a baseline: a git ref of the function to compare with")
    wanted = [*runtimes, "pinned", *([profile_runtime] if profile_calls else [])]  # the load side is on "pinned"
    resolved = {name: resolve_runtime(name) for name in dict.fromkeys(wanted)}
    with tempfile.TemporaryDirectory(prefix="supactl-bench-bridge-") as folder:
        workdir = Path(folder)
        server = EmbeddedPostgres(workdir / "pg", port=free_port() if os.environ.get("BENCH_PORTS") else None)
        server.start()
        try:
            baseline_dir = export_function(baseline, workdir) if baseline else None
            db = prepare_database(server)
            results: list[dict] = []
            runs: list[dict] = []
            stopped: dict[tuple[str, str], int] = {}
            for calls in levels:
                for runtime in (resolved[name] for name in runtimes):
                    active = [target for target in targets if (runtime.label, target) not in stopped]
                    measured: dict[str, list[dict]] = {target: [] for target in active}
                    crashed: dict[str, dict] = {}
                    for repeat in range(repeats):
                        for target in active:
                            if target in crashed:
                                continue
                            try:
                                level = run_level(target, runtime, calls, db, workdir, ramp_per_s=ramp_per_s,
                                                  warm_s=warm_s, window_s=window_s, baseline_dir=baseline_dir)
                            except BenchError as error:
                                # A crash under load is a result too: record it, and stop that target there.
                                level = {"runtime": runtime.label, "target": target, "calls": calls,
                                         "error": str(error)[-1500:]}
                            level["repeat"] = repeat
                            runs.append(level)
                            if "error" in level:
                                crashed[target] = level
                            else:
                                measured[target].append(level)
                    for target in active:
                        summary = crashed.get(target) or median_run(measured[target])
                        results.append(summary)
                        if "error" in summary or broken(summary):
                            stopped[(runtime.label, target)] = calls
            profiles: dict[str, dict] = {}
            profiled_targets = ("bridge", "bridge_before") if baseline_dir else ("bridge",)
            for profiled in profiled_targets if profile_calls else ():
                profile_path = (profile_dir or workdir) / f"{profiled}.cpuprofile"
                level = run_level(profiled, resolved[profile_runtime], profile_calls, db, workdir,
                                  ramp_per_s=ramp_per_s, warm_s=warm_s, window_s=window_s, profile_to=profile_path,
                                  baseline_dir=baseline_dir)
                from bench.profile import summarize_profile

                profiles[profiled] = {"level": level, **summarize_profile(json.loads(profile_path.read_text()),
                                                                          frames=level["frames_sent"])}
        finally:
            server.stop()
    return {"levels": results, "runs": runs, "repeats": repeats, "runtimes": {name: resolved[name].label for name in runtimes},
            "load_runtime": resolved["pinned"].label,
            "broke_at": [{"runtime": label, "target": target, "calls": calls}
                         for (label, target), calls in stopped.items()],
            "profile": profiles.get("bridge"), "profile_before": profiles.get("bridge_before"),
            "baseline": baseline, "window_s": window_s, "warm_s": warm_s,
            "ramp_per_s": ramp_per_s, "load_average": os.getloadavg()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", type=int, nargs="+", default=list(LEVELS))
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), choices=ALL_TARGETS)
    parser.add_argument("--runtimes", nargs="+", default=list(RUNTIMES), choices=list(RUNTIMES),
                        help="the Deno the servers run on: the pinned test wheel, the one shipped for self-hosting")
    parser.add_argument("--window", type=float, default=20)
    parser.add_argument("--warm", type=float, default=5)
    parser.add_argument("--ramp", type=float, default=50, help="calls started per second")
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs of each server at each N and runtime, taking turns; figures are the median run's")
    parser.add_argument("--profile", type=int, default=None, help="also profile the bridge at this many calls")
    parser.add_argument("--profile-runtime", default=PROFILE_RUNTIME, choices=list(RUNTIMES))
    parser.add_argument("--baseline", default=None, metavar="REF",
                        help="also run (and profile) the function as of this git ref: before and after in one run")
    args = parser.parse_args()
    print(json.dumps(run(args.levels, args.targets, args.runtimes, window_s=args.window, warm_s=args.warm,
                         ramp_per_s=args.ramp, repeats=args.repeats, profile_calls=args.profile,
                         profile_runtime=args.profile_runtime, baseline=args.baseline),
                     indent=2))


if __name__ == "__main__":
    main()
