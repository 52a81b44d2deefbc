"""`supactl tenants …` and `supactl numbers …`: who owns which phone number."""

from __future__ import annotations

from typing import Optional

import typer

from supactl.commands._output import cli_errors, command_group, echo, print_json

tenants_app = command_group("Manage tenants.")
numbers_app = command_group("Assign phone numbers to tenants.")

DB_URL = typer.Option(None, "--db-url", help="Postgres connection URL (default: SUPABASE_DB_URL, then .env).")
JSON = typer.Option(False, "--json", help="Print the result as JSON.")


def _connect(db_url: Optional[str]):
    from supactl import config
    from supactl.database.connection import connect

    return connect(config.db_url(db_url), autocommit=True)


@tenants_app.command("add")
@cli_errors
def tenants_add(name: str, db_url: Optional[str] = DB_URL, as_json: bool = JSON) -> None:
    """Create a tenant."""
    from supactl.database import tenants

    with _connect(db_url) as conn:
        tenant = tenants.add_tenant(conn, name)
    if as_json:
        print_json({"id": tenant.id, "name": tenant.name})
    else:
        echo(f"created tenant {tenant.name} ({tenant.id})")


@tenants_app.command("list")
@cli_errors
def tenants_list(db_url: Optional[str] = DB_URL, as_json: bool = JSON) -> None:
    """List tenants."""
    from supactl.database import tenants

    with _connect(db_url) as conn:
        rows = tenants.list_tenants(conn)
    if as_json:
        print_json([{"id": t.id, "name": t.name, "created_at": t.created_at.isoformat()} for t in rows])
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("ID", "Name", "Created")
    for t in rows:
        table.add_row(t.id, t.name, t.created_at.isoformat(timespec="seconds"))
    Console().print(table)


@numbers_app.command("add")
@cli_errors
def numbers_add(
    number: str = typer.Argument(..., help="E.164 number, e.g. +14155550100."),
    tenant: str = typer.Option(..., "--tenant", help="Tenant id or name."),
    db_url: Optional[str] = DB_URL,
    as_json: bool = JSON,
) -> None:
    """Route calls to NUMBER to TENANT."""
    from supactl.database import tenants

    tenants.normalize_e164(number)  # a typo is reported before any connection is tried
    with _connect(db_url) as conn:
        assigned, changed = tenants.add_number(conn, number, tenant)
    if as_json:
        print_json({"phone_number": assigned.phone_number, "tenant_id": assigned.tenant_id, "changed": changed})
    else:
        state = "assigned" if changed else "unchanged:"
        echo(f"{state} {assigned.phone_number} -> {assigned.tenant_name}")


@numbers_app.command("list")
@cli_errors
def numbers_list(
    tenant: Optional[str] = typer.Option(None, "--tenant", help="Only this tenant's numbers."),
    db_url: Optional[str] = DB_URL,
    as_json: bool = JSON,
) -> None:
    """List numbers and their tenants."""
    from supactl.database import tenants

    with _connect(db_url) as conn:
        rows = tenants.list_numbers(conn, tenant)
    if as_json:
        print_json([{"phone_number": n.phone_number, "tenant_id": n.tenant_id, "tenant": n.tenant_name} for n in rows])
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("Number", "Tenant", "Tenant ID")
    for n in rows:
        table.add_row(n.phone_number, n.tenant_name, n.tenant_id)
    Console().print(table)


@numbers_app.command("remove")
@cli_errors
def numbers_remove(number: str, db_url: Optional[str] = DB_URL) -> None:
    """Stop routing NUMBER to its tenant."""
    from supactl.database import tenants

    with _connect(db_url) as conn:
        tenants.remove_number(conn, number)
    echo(f"removed {number}")
