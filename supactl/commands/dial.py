"""`supactl dial TO --tenant T`: place an outbound call that the function answers as tenant T's
agent (library: supactl/cloud/outbound.py, where the rules are)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from supactl.commands._options import DB_URL, JSON, PROJECT_REF, VERBOSE, WORKDIR, project, trace_sink
from supactl.commands._output import cli_errors, echo, print_json
from supactl.commands.twilio import FUNCTION_URL


@cli_errors
def dial(
    to: str = typer.Argument(..., help="E.164 number to call, e.g. +14155550100."),
    tenant: str = typer.Option(..., "--tenant", help="The tenant whose agent makes the call (id or name)."),
    from_number: Optional[str] = typer.Option(None, "--from", help="One of the tenant's numbers (default: its first)."),
    context: Optional[str] = typer.Option(
        None, "--context", help="JSON object (or @FILE) added to this call's instructions; at most 2048 bytes."),
    machine_detection: bool = typer.Option(
        False, "--machine-detection", help="Ask Twilio to detect answering machines (the tenant's voicemail setting)."),
    wait: bool = typer.Option(False, "--wait", help="Follow the call to its end; exit 5 unless it completed."),
    function_url: Optional[str] = FUNCTION_URL,
    project_ref: Optional[str] = PROJECT_REF,
    db_url: Optional[str] = DB_URL,
    workdir: Optional[Path] = WORKDIR,
    as_json: bool = JSON,
    verbose: bool = VERBOSE,
) -> None:
    """Call TO as TENANT's agent and print the CallSid. Exit codes: 1 a rule refused the dial (nothing
    sent), 2 configuration, 3 database, 4 Twilio refused, 5 with --wait: busy / no-answer / failed / canceled."""
    from supactl import config
    from supactl.cloud import outbound
    from supactl.cloud.deployed_function import function_url as resolve_function_url
    from supactl.cloud.twilio_api import TwilioClient
    from supactl.database import tenants
    from supactl.database.connection import connect

    project_dir = project(workdir)
    callee = tenants.normalize_e164(to)
    if context is not None and context.startswith("@"):
        path = Path(context[1:])
        if path.stat().st_size > outbound.MAX_CONTEXT_BYTES * 4:
            raise outbound.DialError(f"{path} is too large for a call's context")
        context = path.read_text()
    call_context = outbound.parse_context(context)
    url = resolve_function_url(function_url, project_ref=project_ref, project_dir=project_dir)
    # Every rule is checked before Twilio is asked to ring anyone.
    with connect(config.db_url(db_url, project_dir=project_dir)) as conn:
        owner = tenants.find_tenant(conn, tenant)
        owned = [n.phone_number for n in tenants.list_numbers(conn, owner.id)]
        row = conn.execute("select record_calls from public.tenant_agents where tenant_id = %s",
                           (owner.id,)).fetchone()
    caller = outbound.choose_from(owned, from_number, owner.name)
    form = outbound.dial_form(to=callee, from_number=caller, function_url=url, context=call_context,
                              machine_detection=machine_detection, record=bool(row and row[0]))
    with TwilioClient.from_config(project_dir=project_dir, trace=trace_sink(verbose)) as client:
        call = outbound.place_call(client, form)
        if not as_json:
            echo(call["sid"])
        final = outbound.wait_for_end(client, call["sid"]) if wait else None
    if as_json:
        print_json({"call_sid": call["sid"], "to": callee, "from": caller, "tenant": owner.name,
                    "status": (final or call).get("status"), "duration_s": (final or {}).get("duration")})
    elif final is not None:
        echo(f"{call['sid']} completed after {final.get('duration')} s")
