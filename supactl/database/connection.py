"""Connections to the project's Postgres, with errors a user can read (and no password in them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from supactl.config import DatabaseUrl
from supactl.errors import DatabaseError
from supactl.redact import redact

if TYPE_CHECKING:
    import psycopg


def connect(url: str, *, autocommit: bool = False, connect_timeout: int = 10) -> "psycopg.Connection":
    import psycopg

    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=connect_timeout)
    except psycopg.OperationalError as exc:
        raise DatabaseError(f"cannot connect to {_describe(url)}: {_first_line(str(exc))}", hint=_fix(url)) from None
    except psycopg.ProgrammingError as exc:
        raise DatabaseError(f"invalid database URL: {_first_line(str(exc))}") from None


def _fix(url: str) -> str:
    source = url.source if isinstance(url, DatabaseUrl) else None
    if source is None:
        return "check the host, port, user and password of the database URL"
    if "supactl dev" in source:
        return f"the URL came from {source}: check it is still up with `supactl dev status`"
    return f"the URL came from {source}: check its host, port, user and password"


def _describe(url: str) -> str:
    """host:port/database as user, never the password."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        return f"{parts.hostname}:{parts.port or 5432}/{parts.path.lstrip('/') or 'postgres'} as {parts.username}"
    except ValueError:
        return "the database"


def _first_line(message: str) -> str:
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    # libpq prefixes the interesting part with the address it tried; keep the server's reason.
    return redact(lines[-1] if lines else "unknown error")


def apply_local_bootstrap(url: str) -> None:
    """Create Supabase's roles and auth.jwt()/auth.uid() on a local server (never a hosted one)."""
    from importlib.resources import files

    sql = files("supactl.database").joinpath("sql/local_supabase_bootstrap.sql").read_text()
    with connect(url, autocommit=True) as conn:
        conn.execute(sql)
