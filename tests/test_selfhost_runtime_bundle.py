"""The self-hosting runtime bundle: built from the project, it starts the function from its own
files alone (no registry, no DENO_DIR of ours), with named permissions, and the image runs the
launcher's exact command."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from supactl.project_files import bundled_function_dir
from supactl.selfhost import deno_release, runtime_bundle
from supactl.selfhost.deno_release import SHIPPED_DENO_VERSION, DenoReleaseError, shipped_deno, user_cache_dir
from supactl.selfhost.runtime_bundle import BundleError, build_bundle, containerfile, launcher_script, permissions

FUNCTION_DIR = bundled_function_dir()
START_TIMEOUT_S = 30

# A network namespace with loopback only, and the bundle mounted read-only: the function can
# neither fetch a module nor write its DENO_DIR, as in the container. Needs root (CI runs as root).
SANDBOX = ('ip link set lo up && mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && exec "$2"')


def _sandbox_works() -> bool:
    if os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("nsenter") and shutil.which("ip")):
        return False
    probe = subprocess.run(["unshare", "-n", "-m", "true"], capture_output=True)
    return probe.returncode == 0


def test_permissions_name_every_setting_and_grant_no_more_than_net_and_env():
    granted = permissions(FUNCTION_DIR)
    assert granted[0] == "--allow-net"
    assert not any(flag in ("-A", "--allow-all") or flag.startswith(("--allow-read", "--allow-write", "--allow-run",
                                                                     "--allow-sys", "--allow-ffi"))
                   for flag in granted)
    env = granted[1].removeprefix("--allow-env=").split(",")
    for setting in ("TWILIO_AUTH_TOKEN", "OPENAI_API_KEY", "PUBLIC_URL", "SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY",
                    "SUPABASE_DB_URL", "TURN_STORE", "WALL_CLOCK_LIMIT_S", "PORT", "HOST"):
        assert setting in env
    assert "PG*" in env  # npm:postgres reads PG* at connect time
    assert "TEST_DATABASE_URL" not in env  # read by the function's tests only


def test_the_image_runs_the_launchers_command():
    granted = permissions(FUNCTION_DIR)
    exec_line = next(line for line in launcher_script(granted).splitlines() if line.startswith("exec "))
    launched = [word.replace("$root", "/opt/twilio-voice") for word in shlex.split(exec_line)[1:]]
    entrypoint_line = next(line for line in containerfile(granted, "2.4.5").splitlines()
                           if line.startswith("ENTRYPOINT "))
    assert json.loads(entrypoint_line.removeprefix("ENTRYPOINT ")) == launched


def test_containerfile_is_non_root_on_a_minimal_base():
    text = containerfile(permissions(FUNCTION_DIR), "2.4.5")
    assert text.splitlines()[4].startswith("FROM gcr.io/distroless/cc-debian12:nonroot")
    assert "USER 65532:65532" in text
    assert "RUN " not in text  # nothing to execute in a shell-less base: the bundle is complete


def test_build_refuses_a_folder_that_holds_something_else(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(BundleError, match="not empty"):
        build_bundle(tmp_path, FUNCTION_DIR, Path(sys.executable))
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_build_refuses_a_folder_without_the_function(tmp_path):
    with pytest.raises(BundleError, match="index.ts"):
        build_bundle(tmp_path / "out", tmp_path, Path(sys.executable))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_REQUEST = """
import sys, urllib.request, urllib.error
request = urllib.request.Request(sys.argv[1], method=sys.argv[2], data=b"" if sys.argv[2] == "POST" else None)
try:
    with urllib.request.urlopen(request, timeout=2) as response:
        print(response.status, response.read().decode())
except urllib.error.HTTPError as error:
    print(error.code, error.read().decode())
"""


def _request(url: str, method: str, netns_of: int | None) -> tuple[int, str] | None:
    """(status, body), or None while nothing listens; inside the function's namespace if it has one."""
    command = [sys.executable, "-c", _REQUEST, url, method]
    if netns_of is not None:
        command = ["nsenter", f"--net=/proc/{netns_of}/ns/net", *command]
    result = subprocess.run(command, capture_output=True, text=True, timeout=10)
    if result.returncode != 0:
        return None
    status, _, body = result.stdout.partition(" ")
    return int(status), body.strip()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """The bundle as `supactl selfhost build` makes it: on the shipped Deno release, not the tests' 2.4.5."""
    built = build_bundle(tmp_path_factory.mktemp("selfhost") / "bundle", FUNCTION_DIR, shipped_deno(user_cache_dir()))
    assert built.deno_version == SHIPPED_DENO_VERSION
    return built


def test_only_the_pinned_deno_wheels_are_shipped(tmp_path, monkeypatch):
    with pytest.raises(DenoReleaseError, match="no pinned Deno 2.8.3 wheel for riscv64"):
        shipped_deno(tmp_path, machine="riscv64")
    # A wheel whose bytes are not the pinned ones is refused and nothing lands in the cache.
    tag, _ = deno_release._WHEELS[(SHIPPED_DENO_VERSION, "x86_64")]
    monkeypatch.setitem(deno_release._WHEELS, (SHIPPED_DENO_VERSION, "x86_64"), (tag, "0" * 64))
    with pytest.raises(DenoReleaseError, match="not the pinned 0000"):
        shipped_deno(tmp_path, machine="x86_64")
    assert not any(tmp_path.rglob("deno"))


def _settings(port: int, **overrides: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "TWILIO_AUTH_TOKEN": "bundle-test-token", "OPENAI_API_KEY": "sk-bundle-test",
        "PUBLIC_URL": f"http://127.0.0.1:{port}/twilio-voice", "PORT": str(port), "HOST": "127.0.0.1",
        "SUPABASE_URL": "http://127.0.0.1:9", "SUPABASE_SERVICE_ROLE_KEY": "bundle-test-key",
        **overrides,
    }


def _stop(process: subprocess.Popen) -> str:
    process.terminate()
    output, _ = process.communicate(timeout=10)  # the function exits on SIGTERM (index.ts): a hang fails
    return output


@pytest.mark.slow
def test_the_function_starts_from_the_bundle_alone(bundle, tmp_path):
    assert (bundle.root / runtime_bundle.LAUNCHER).stat().st_mode & 0o111
    assert (bundle.root / runtime_bundle.DENO).stat().st_mode & 0o111
    assert not list((bundle.root / runtime_bundle.APP_DIR).rglob("*_test.ts"))
    assert not list((bundle.root / runtime_bundle.DENO_DIR).glob("*-wal"))
    recorded = json.loads((bundle.root / runtime_bundle.MANIFEST).read_text())
    assert recorded["deno_version"] == bundle.deno_version == SHIPPED_DENO_VERSION

    port = _free_port()
    url = f"http://127.0.0.1:{port}/twilio-voice"
    # Anything that would fetch fails: no proxy answers on port 9, the registry is bogus (the
    # launcher pins the one the cache was built from), and our own DENO_DIR is not the bundle's.
    env = _settings(port, HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9",
                    ALL_PROXY="http://127.0.0.1:9", NPM_CONFIG_REGISTRY="http://127.0.0.1:9/",
                    DENO_DIR=str(tmp_path / "empty-deno-dir"))
    launcher = str(bundle.root / runtime_bundle.LAUNCHER)
    sandboxed = _sandbox_works()
    command = ["unshare", "-n", "-m", "sh", "-c", SANDBOX, "sh", str(bundle.root), launcher] if sandboxed \
        else [launcher]
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    try:
        answer = None
        while answer is None:
            assert process.poll() is None, f"the function exited: {process.stdout.read() if process.stdout else ''}"
            assert time.monotonic() - started < START_TIMEOUT_S, "the function did not answer in time"
            answer = _request(url, "POST", process.pid if sandboxed else None)
            if answer is None:
                time.sleep(0.05)
        start_up_s = time.monotonic() - started
        assert answer == (400, "missing X-Twilio-Signature")
        status, body = _request(url, "GET", process.pid if sandboxed else None) or (0, "")
        assert status == 200 and json.loads(body)["status"] == "ok"
        print(f"\nbundle: {bundle.size_bytes / 1e6:.1f} MB in {bundle.files} files; first answer "
              f"{start_up_s:.2f} s after start ({'no network, read-only bundle' if sandboxed else 'unsandboxed'})")
    finally:
        _stop(process)
    assert not (tmp_path / "empty-deno-dir").exists()


@pytest.mark.slow
def test_a_whole_call_runs_on_the_bundles_permissions(bundle, db_url):
    """The named permissions suffice for a call end to end: Postgres turn store, the model's
    WebSocket, Twilio's stream; a permission missing would end the call or the worker."""
    from supactl.database import tenants
    from supactl.database.call_log import PostgresCallLog, wait_until_final
    from supactl.database.connection import connect
    from supactl.dev_stack.realtime_peer import PeerBehaviour, RealtimePeer
    from supactl.simulator.simulated_call import CallOptions, place_call

    number = "+15555550142"
    with connect(db_url) as conn:
        tenants.add_number(conn, number, tenants.add_tenant(conn, "Bundle Dental").id)
    peer = RealtimePeer(PeerBehaviour(api_keys=frozenset({"sk-bundle-test"})))
    port = _free_port()
    env = _settings(port, TURN_STORE="postgres", SUPABASE_DB_URL=db_url + "?sslmode=disable",
                    OPENAI_REALTIME_URL=peer.start())
    process = subprocess.Popen([str(bundle.root / runtime_bundle.LAUNCHER)], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        while _request(env["PUBLIC_URL"], "GET", None) is None:
            assert process.poll() is None, "the function exited during start"
            time.sleep(0.05)
        report = place_call(CallOptions(function_url=env["PUBLIC_URL"], auth_token=env["TWILIO_AUTH_TOKEN"],
                                        to_number=number))
        call, turns = wait_until_final(PostgresCallLog(db_url), report.call_sid)
    finally:
        output = _stop(process)
        peer.stop()
    assert report.protocol_errors == [] and report.frames_received > 0, output
    assert call.status == "completed" and turns, output
    assert "NotCapable" not in output and "Requires " not in output
