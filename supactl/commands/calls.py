"""`supactl calls list` and `supactl calls show CALL_SID`: the call log and transcripts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from supactl.commands._options import JSON, LOCAL_DB_URL, TENANT_FILTER, WORKDIR, local_database, project
from supactl.commands._output import cli_errors, command_group, print_json
from supactl.commands.tables import console as _console, print_table

calls_app = command_group("Read the call log and transcripts.")

JWT = typer.Option(None, "--jwt", help="Read as this user's JWT (row-level security applies).", show_default=False)
PROJECT_URL = typer.Option(None, "--project-url", help="Read through the API: https://REF.supabase.co (SUPABASE_URL).")
KEY = typer.Option(None, "--key", help="API key for --project-url (anon or service role; SUPABASE_ANON_KEY).",
                   show_default=False)


def _call_log(db_url: Optional[str], jwt: Optional[str], project_url: Optional[str], key: Optional[str],
              workdir: Optional[Path]):
    from supactl import config
    from supactl.database import call_log as calls
    from supactl.errors import ConfigError
    from supactl.redact import register

    register(jwt)
    if project_url:
        where = project(workdir)
        api_key = config.lookup("SUPABASE_ANON_KEY", key, project_dir=where, secret=True) or config.lookup(
            "SUPABASE_SERVICE_ROLE_KEY", project_dir=where, secret=True)
        if not api_key:
            raise ConfigError("--project-url needs an API key", hint="pass --key or set SUPABASE_ANON_KEY")
        return calls.SupabaseCallLog(project_url, api_key, jwt)
    return calls.PostgresCallLog(local_database(db_url, workdir), jwt)


def _when(value) -> str:
    if value is None:
        return ""
    if hasattr(value, "astimezone"):
        return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    return str(value)[:19].replace("T", " ")


@calls_app.command("list")
@cli_errors
def calls_list(
    tenant: Optional[str] = TENANT_FILTER,
    limit: int = typer.Option(50, "--limit", min=1, max=1000, help="Show at most this many calls (1-1000)."),
    db_url: Optional[str] = LOCAL_DB_URL, jwt: Optional[str] = JWT, project_url: Optional[str] = PROJECT_URL,
    key: Optional[str] = KEY, workdir: Optional[Path] = WORKDIR, as_json: bool = JSON,
) -> None:
    """List calls, newest first."""
    rows = _call_log(db_url, jwt, project_url, key, workdir).list_calls(tenant, limit)
    if as_json:
        from dataclasses import asdict

        print_json({"calls": [asdict(row) for row in rows]})
        return
    print_table(("Call", "Tenant", "From", "To", "Started", "Status", "Handoffs"), [
        (c.call_sid, c.tenant_name or c.tenant_id, c.from_number or "", c.to_number or "", _when(c.started_at),
         c.status + (f" ({c.end_reason})" if c.end_reason else ""), str(c.handoff_count)) for c in rows],
        empty="no calls")


@calls_app.command("show")
@cli_errors
def calls_show(
    call_sid: str = typer.Argument(..., help="The Twilio CallSid (CA…)."),
    db_url: Optional[str] = LOCAL_DB_URL, jwt: Optional[str] = JWT, project_url: Optional[str] = PROJECT_URL,
    key: Optional[str] = KEY, workdir: Optional[Path] = WORKDIR, as_json: bool = JSON,
) -> None:
    """Show one call and its transcript, in conversation order."""
    from supactl.database.call_log import transcript_lines

    call, turns = _call_log(db_url, jwt, project_url, key, workdir).call_with_turns(call_sid)
    if as_json:
        from dataclasses import asdict

        print_json({**asdict(call), "transcript": transcript_lines(turns)})
        return
    from rich.markup import escape
    from rich.table import Table

    console = _console()
    head = Table(show_header=False, box=None)
    for name, value in (("call", call.call_sid), ("tenant", call.tenant_name or call.tenant_id),
                        ("from / to", f"{call.from_number} -> {call.to_number}"),
                        ("started / ended", f"{_when(call.started_at)} / {_when(call.ended_at)}"),
                        ("status", call.status + (f" ({call.end_reason})" if call.end_reason else "")),
                        ("handoffs", str(call.handoff_count)), ("usage", json.dumps(call.usage)),
                        *((("transfer", f"{call.transfer_to} ({call.transfer_outcome or 'pending'})"),)
                          if call.transfer_to else ())):
        head.add_row(name, escape(value))
    console.print(head)
    transcript = Table("#", "Role", "Text", "Interrupted")
    for t in turns:
        transcript.add_row(str(t.seq), t.role, escape(t.text), "yes" if t.interrupted else "")
    console.print(transcript if turns else "no turns stored")
