"""What a `supactl dev` leaves in the project's `.supactl/`: the settings it wrote (dev.env) and
the pid files of the processes it owns, so other commands find the running stack and a later
start (or `dev stop`) can clean up after one that was killed."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from supactl import config
from supactl.errors import ConfigError

DEV_ENV_FILE = "dev.env"
DEV_PID_FILE = "dev.pid"  # the `supactl dev` process
FUNCTION_PID_FILE = "function.pid"  # Deno, leader of its own process group


def state_dir(project_dir: Path) -> Path:
    return project_dir / ".supactl"


def read_dev_env(project_dir: Path) -> dict[str, str]:
    """What the last `supactl dev` wrote, or {} when it never ran here. Its values are dev-only
    (loopback addresses, a generated token) and `supactl dev` prints them on purpose: not masked."""
    path = state_dir(project_dir) / DEV_ENV_FILE
    return config.read_env_file(path, mask=False) if path.is_file() else {}


def write_pid(project_dir: Path, name: str, pid: int) -> None:
    path = state_dir(project_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{pid}\n")


def remove_pid(project_dir: Path, name: str) -> None:
    (state_dir(project_dir) / name).unlink(missing_ok=True)


def live_pid(project_dir: Path, name: str, command_hint: str) -> int | None:
    """The pid in a pid file if that process is alive and still the one we started (its command
    line names `command_hint`; a pid reused by another program does not count)."""
    path = state_dir(project_dir) / name
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():
        try:
            if command_hint not in cmdline.read_bytes().decode(errors="replace"):
                return None
        except OSError:
            return None
    return pid


@dataclass(frozen=True)
class RunningDev:
    pid: int
    env: dict[str, str]


def running_dev(project_dir: Path) -> RunningDev | None:
    pid = live_pid(project_dir, DEV_PID_FILE, "supactl")
    return RunningDev(pid, read_dev_env(project_dir)) if pid is not None else None


def local_db_url(flag: str | None = None, *, project_dir: Path,
                 environ: Mapping[str, str] | None = None) -> config.DatabaseUrl:
    """The database of a local command (tenants, numbers, db, calls, call): --db-url > SUPABASE_DB_URL
    in the environment > in .env > the `supactl dev` running in this project."""
    try:
        return config.db_url(flag, project_dir=project_dir, environ=environ)
    except ConfigError as exc:
        if not exc.message.startswith("no database URL"):
            raise
    dev = running_dev(project_dir)
    dev_env = state_dir(project_dir) / DEV_ENV_FILE
    if dev is not None and dev.env.get("SUPABASE_DB_URL"):
        return config.check_db_url(dev.env["SUPABASE_DB_URL"], f"the running `supactl dev` ({dev_env})")
    stale = " (its last one has stopped)" if dev_env.is_file() else ""
    raise ConfigError(
        f"no database URL: SUPABASE_DB_URL is set neither in the environment nor in {project_dir / '.env'}, "
        f"and no `supactl dev` is running in {project_dir}{stale}",
        hint="start `supactl dev` in the project (another shell), or " + config.DB_URL_HINT)
