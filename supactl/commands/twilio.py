"""`supactl twilio link-number` and `supactl twilio numbers`: point Twilio numbers at the function
and show where each number's calls go."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from supactl.commands._options import DB_URL, JSON, PROJECT_REF, VERBOSE, WORKDIR, project, trace_sink
from supactl.commands._output import cli_errors, command_group, echo, print_json

twilio_app = command_group("Point Twilio phone numbers at the function.")

FUNCTION_URL = typer.Option(
    None, "--function-url",
    help="Webhook URL (default: PUBLIC_URL, else https://REF.supabase.co/functions/v1/twilio-voice).",
)


@twilio_app.command("link-number")
@cli_errors
def link_number_command(
    number: str = typer.Argument(..., help="E.164 number on your Twilio account, e.g. +14155550100."),
    tenant: Optional[str] = typer.Option(None, "--tenant", help="Also record the number for this tenant (id or name)."),
    force: bool = typer.Option(False, "--force", help="Clear a voice application or SIP trunk on the number."),
    function_url: Optional[str] = FUNCTION_URL,
    project_ref: Optional[str] = PROJECT_REF,
    db_url: Optional[str] = DB_URL,
    workdir: Optional[Path] = WORKDIR,
    as_json: bool = JSON,
    verbose: bool = VERBOSE,
) -> None:
    """Send calls to NUMBER to the function: VoiceUrl = the function URL, VoiceMethod = POST."""
    from supactl import config
    from supactl.cloud.deployed_function import function_url as resolve_function_url
    from supactl.cloud.twilio_api import TwilioClient, link_number
    from supactl.database import tenants

    project_dir = project(workdir)
    e164 = tenants.normalize_e164(number)
    url = resolve_function_url(function_url, project_ref=project_ref, project_dir=project_dir)
    # Every setting is checked before Twilio or the database is touched.
    database = config.db_url(db_url, project_dir=project_dir) if tenant else None
    with TwilioClient.from_config(project_dir=project_dir, trace=trace_sink(verbose)) as client:
        if database is None or tenant is None:
            result, assigned = link_number(client, e164, url, force=force), None
        else:
            from supactl.database.connection import connect

            # One transaction: the tenant check runs before Twilio is changed, and the number is
            # recorded only if linking succeeded (an exception rolls the insert back).
            with connect(database) as conn:
                assigned = tenants.add_number(conn, e164, tenant)
                result = link_number(client, e164, url, force=force)

    if as_json:
        print_json({
            "phone_number": result.number.phone_number, "sid": result.number.sid,
            "voice_url": result.number.voice_url, "voice_method": result.number.voice_method,
            "changed": result.changed, "cleared": list(result.cleared),
            "tenant": None if assigned is None else {
                "id": assigned[0].tenant_id, "name": assigned[0].tenant_name, "changed": assigned[1]},
        })
        return
    for cleared in result.cleared:
        echo(f"cleared {cleared} from {e164}")
    if result.changed:
        echo(f"linked {e164} -> POST {url}")
    else:
        echo(f"unchanged: {e164} already -> POST {url}")
    if assigned is not None:
        owner, recorded = assigned
        echo(f"{'assigned' if recorded else 'unchanged:'} {e164} -> tenant {owner.tenant_name}")


@twilio_app.command("numbers")
@cli_errors
def numbers_command(
    function_url: Optional[str] = FUNCTION_URL,
    project_ref: Optional[str] = PROJECT_REF,
    workdir: Optional[Path] = WORKDIR,
    as_json: bool = JSON,
    verbose: bool = VERBOSE,
) -> None:
    """List the account's numbers, where each one's calls go, and whether that is this project's function."""
    from supactl.cloud.deployed_function import function_url as resolve_function_url
    from supactl.cloud.twilio_api import TwilioClient, route_of
    from supactl.errors import ConfigError

    project_dir = project(workdir)
    try:
        url: Optional[str] = resolve_function_url(function_url, project_ref=project_ref, project_dir=project_dir)
    except ConfigError as exc:
        # Listing is still useful without a project: say why "reaches the function" is unknown.
        if function_url or project_ref:
            raise
        url = None
        echo(f"note: cannot tell which numbers reach the function ({exc.message}); "
             "pass --function-url or --project-ref", err=True)
    with TwilioClient.from_config(project_dir=project_dir, trace=trace_sink(verbose)) as client:
        numbers = client.list_numbers()

    rows = [(n, route_of(n, url)) for n in numbers]
    if as_json:
        print_json({"function_url": url, "numbers": [
            {"phone_number": n.phone_number, "sid": n.sid, "voice_url": n.voice_url,
             "voice_method": n.voice_method, "voice_application_sid": n.voice_application_sid,
             "trunk_sid": n.trunk_sid, "route": r.description, "reaches_function": r.reaches_function}
            for n, r in rows]})
        return
    if not rows:
        echo("no incoming phone numbers on this Twilio account")
        return
    # Plain columns with the long one last: URLs are never truncated, and the output greps well.
    lines = [("NUMBER", "SID", "REACHES FUNCTION", "CALLS GO TO")]
    lines += [(n.phone_number, n.sid, {True: "yes", False: "no", None: "?"}[r.reaches_function], r.description)
              for n, r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(3)]
    for line in lines:
        echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths)) + "  " + line[3])
