"""`supactl tools …`: what the agent may do during a tenant's calls (supactl.database.tools)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from supactl.commands._options import JSON, LOCAL_DB_URL, TENANT_FILTER, WORKDIR, local_database
from supactl.commands._output import cli_errors, command_group, echo, print_json
from supactl.commands.tables import print_table

tools_app = command_group("Define the tools the agent can call: HTTP endpoints, SQL functions, transfer, hang-up.")

TENANT = typer.Option(..., "--tenant", help="Tenant id or name.")


def _connect(db_url: Optional[str], workdir: Optional[Path]):
    from supactl.database.connection import connect

    return connect(local_database(db_url, workdir), autocommit=True)


@tools_app.command("add")
@cli_errors
def tools_add(
    name: str = typer.Argument(..., help="The name the model calls it by: 1-64 letters, digits, _ or -."),
    tenant: str = TENANT,
    description: str = typer.Option(..., "--description", help="What it does and when to use it (the model reads this)."),
    parameters: Optional[str] = typer.Option(None, "--parameters", help="JSON Schema of its arguments, inline or @file."),
    url: Optional[str] = typer.Option(None, "--url", help="HTTP tool: POST a signed JSON body to this URL."),
    sql: Optional[str] = typer.Option(None, "--sql", help="SQL tool: schema.function(args jsonb) returns jsonb, run under the tenant's RLS."),
    transfer_to: Optional[str] = typer.Option(None, "--transfer-to", help="Built-in transfer: dial this E.164 number."),
    end_call: bool = typer.Option(False, "--end-call", help="Built-in hang-up: the agent ends the call after its goodbye."),
    timeout_ms: int = typer.Option(5000, "--timeout-ms", help="How long a call of the tool may take (100-30000)."),
    allow_security_definer: bool = typer.Option(
        False, "--allow-security-definer", help="Accept a SECURITY DEFINER function (it runs past the tenant's RLS)."),
    db_url: Optional[str] = LOCAL_DB_URL, workdir: Optional[Path] = WORKDIR, as_json: bool = JSON,
) -> None:
    """Give TENANT's agent a tool."""
    from supactl.database import tools

    # Every argument is checked before a connection is tried.
    target = tools.ToolTarget(url=url, sql=sql, transfer_to=transfer_to, end_call=end_call)
    schema = tools.parse_parameters(parameters)
    with _connect(db_url, workdir) as conn:
        tool = tools.add_tool(conn, tenant, name, description, target, parameters=schema, timeout_ms=timeout_ms,
                              allow_security_definer=allow_security_definer)
    if as_json:
        print_json({"tool": tool.as_json()})
    else:
        echo(f"added {tool.kind} tool {tool.name} for {tool.tenant_name}" + (f" -> {tool.target}" if tool.target else ""))


@tools_app.command("list")
@cli_errors
def tools_list(tenant: Optional[str] = TENANT_FILTER, db_url: Optional[str] = LOCAL_DB_URL,
               workdir: Optional[Path] = WORKDIR, as_json: bool = JSON) -> None:
    """List tools, per tenant."""
    from supactl.database import tools

    with _connect(db_url, workdir) as conn:
        rows = tools.list_tools(conn, tenant)
    if as_json:
        print_json({"tools": [t.as_json() for t in rows]})
        return
    print_table(("Tenant", "Tool", "Kind", "Target", "Timeout", "Enabled"),
                [(t.tenant_name, t.name, t.kind, t.target or "", f"{t.timeout_ms} ms", "yes" if t.enabled else "no")
                 for t in rows])


@tools_app.command("remove")
@cli_errors
def tools_remove(name: str = typer.Argument(..., help="The tool's name."), tenant: str = TENANT,
                 db_url: Optional[str] = LOCAL_DB_URL, workdir: Optional[Path] = WORKDIR, as_json: bool = JSON) -> None:
    """Take a tool away from TENANT's agent."""
    from supactl.database import tools

    with _connect(db_url, workdir) as conn:
        tools.remove_tool(conn, name, tenant)
    if as_json:
        print_json({"removed": name})
    else:
        echo(f"removed tool {name}")


@tools_app.command("signing-key")
@cli_errors
def tools_signing_key(tenant: str = TENANT, db_url: Optional[str] = LOCAL_DB_URL,
                      workdir: Optional[Path] = WORKDIR, as_json: bool = JSON) -> None:
    """Print TENANT's key for verifying its HTTP tool requests (the only command that prints a secret)."""
    from supactl.database import tools

    with _connect(db_url, workdir) as conn:
        key = tools.signing_key(conn, tenant)
    if as_json:
        print_json({"signing_key": key})
    else:
        echo(key)


@tools_app.command("test")
@cli_errors
def tools_test(name: str = typer.Argument(..., help="The tool's name."), tenant: str = TENANT,
               args: str = typer.Option("{}", "--args", help="The arguments, as the model would send them (JSON)."),
               db_url: Optional[str] = LOCAL_DB_URL, workdir: Optional[Path] = WORKDIR, as_json: bool = JSON) -> None:
    """Run a tool once exactly as the bridge would (signed request, SQL under RLS, timeout) and print its output."""
    import json

    from supactl.database.tools import ToolError
    from supactl.dev_stack.tool_trial import try_tool

    try:
        arguments = json.loads(args)
    except json.JSONDecodeError as exc:
        raise ToolError(f"--args is not JSON: {exc.msg} at column {exc.colno}") from None
    url = local_database(db_url, workdir)
    from supactl.database.connection import connect

    with connect(url, autocommit=True) as conn:
        result = try_tool(conn, url, name, tenant, arguments)
    if as_json:
        print_json({"result": result})
    else:
        took = f" in {result['durationMs']} ms" if "durationMs" in result else ""
        echo(f"{result['tool']} ({result['kind']}): {result['status']}{took}")
        echo(result["output"])
