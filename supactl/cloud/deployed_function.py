"""What the deployed function needs and where it answers: its secrets, its URL, the numbers routed to it.

Shared by `up` (which sets them) and `doctor` (which checks them), so neither imports the other.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

from supactl import config
from supactl.config import lookup
from supactl.errors import ConfigError, SupactlError
from supactl.project_files import FUNCTION_NAME

# The function refuses to start without these (see the brief's environment list).
REQUIRED_SECRETS = ("OPENAI_API_KEY", "TWILIO_AUTH_TOKEN")
# Sent when set locally; SUPABASE_URL / SUPABASE_SERVICE_ROLE_KEY / SUPABASE_DB_URL come from the platform.
# TWILIO_ACCOUNT_SID: the dial endpoint places calls as that account (dial_api.ts).
OPTIONAL_SECRETS = ("PUBLIC_URL", "OPENAI_REALTIME_URL", "OPENAI_REALTIME_MODEL", "TURN_STORE", "WALL_CLOCK_LIMIT_S",
                    "TWILIO_ACCOUNT_SID")
NUMBERS_VARIABLE = "SUPACTL_TWILIO_NUMBERS"


def function_url(flag: str | None = None, *, project_ref: str | None = None, project_dir: Path | None = None,
                 environ: Mapping[str, str] | None = None) -> str:
    """The webhook the numbers should call: --function-url > PUBLIC_URL (the function's own public
    URL, which it also signs and streams against) > https://REF.supabase.co/functions/v1/twilio-voice."""
    url = flag or lookup("PUBLIC_URL", project_dir=project_dir, environ=environ)
    if url:
        if not re.match(r"^https?://[^/\s]+", url):
            raise ConfigError(f"function URL {url!r} is not an http(s) URL",
                              hint="pass --function-url https://REF.supabase.co/functions/v1/" + FUNCTION_NAME)
        return url.rstrip("/")
    from supactl.config import project_ref as configured_ref

    ref = configured_ref(project_ref, project_dir=project_dir, environ=environ)
    return f"https://{ref}.supabase.co/functions/v1/{FUNCTION_NAME}"


def configured_numbers(project_dir: Path, environ: Mapping[str, str], db_url: str) -> tuple[list[str], str]:
    from supactl.database.tenants import normalize_e164

    listed = config.lookup(NUMBERS_VARIABLE, project_dir=project_dir, environ=environ)
    if listed:
        try:
            numbers = [normalize_e164(n) for n in listed.split(",") if n.strip()]
        except SupactlError as exc:
            raise ConfigError(f"{NUMBERS_VARIABLE}: {exc.message}", hint=exc.hint) from None
        return sorted(set(numbers)), NUMBERS_VARIABLE
    return tenant_numbers(db_url), "tenant numbers in the database"


def tenant_numbers(db_url: str) -> list[str]:
    """Every number a tenant owns; [] when the tables do not exist yet (migrations not applied)."""
    from supactl.database.connection import connect

    with connect(db_url, autocommit=True) as conn:
        row = conn.execute("select to_regclass('public.tenant_phone_numbers') is not null").fetchone()
        exists = bool(row and row[0])
        if not exists:
            return []
        rows = conn.execute("select phone_number from public.tenant_phone_numbers order by phone_number").fetchall()
    return [row[0] for row in rows]
