"""`supactl tenants …` and `supactl numbers …`: who owns which phone number."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from supactl.commands._options import JSON, LOCAL_DB_URL, TENANT_FILTER, WORKDIR, local_database
from supactl.commands._output import cli_errors, command_group, echo, print_json
from supactl.commands.tables import print_table

tenants_app = command_group("Manage tenants.")
numbers_app = command_group("Assign phone numbers to tenants.")


def _connect(db_url: Optional[str], workdir: Optional[Path]):
    from supactl.database.connection import connect

    return connect(local_database(db_url, workdir), autocommit=True)


@tenants_app.command("add")
@cli_errors
def tenants_add(name: str = typer.Argument(..., help="The tenant's name, e.g. \"Acme Dental\" (unique)."),
                db_url: Optional[str] = LOCAL_DB_URL, workdir: Optional[Path] = WORKDIR, as_json: bool = JSON) -> None:
    """Create a tenant."""
    from supactl.database import tenants

    with _connect(db_url, workdir) as conn:
        tenant = tenants.add_tenant(conn, name)
    if as_json:
        print_json({"id": tenant.id, "name": tenant.name})
    else:
        echo(f"created tenant {tenant.name} ({tenant.id})")


@tenants_app.command("list")
@cli_errors
def tenants_list(db_url: Optional[str] = LOCAL_DB_URL, workdir: Optional[Path] = WORKDIR, as_json: bool = JSON) -> None:
    """List tenants."""
    from supactl.database import tenants

    with _connect(db_url, workdir) as conn:
        rows = tenants.list_tenants(conn)
    if as_json:
        print_json({"tenants": [{"id": t.id, "name": t.name, "created_at": t.created_at.isoformat()} for t in rows]})
        return
    print_table(("ID", "Name", "Created"), [(t.id, t.name, t.created_at.isoformat(timespec="seconds")) for t in rows])


@numbers_app.command("add")
@cli_errors
def numbers_add(
    number: str = typer.Argument(..., help="E.164 number, e.g. +14155550100."),
    tenant: str = typer.Option(..., "--tenant", help="Tenant id or name."),
    db_url: Optional[str] = LOCAL_DB_URL, workdir: Optional[Path] = WORKDIR, as_json: bool = JSON,
) -> None:
    """Route calls to NUMBER to TENANT."""
    from supactl.database import tenants

    tenants.normalize_e164(number)  # a typo is reported before any connection is tried
    with _connect(db_url, workdir) as conn:
        assigned, changed = tenants.add_number(conn, number, tenant)
    if as_json:
        print_json({"phone_number": assigned.phone_number, "tenant_id": assigned.tenant_id, "changed": changed})
    else:
        state = "assigned" if changed else "unchanged:"
        echo(f"{state} {assigned.phone_number} -> {assigned.tenant_name}")


@numbers_app.command("list")
@cli_errors
def numbers_list(tenant: Optional[str] = TENANT_FILTER, db_url: Optional[str] = LOCAL_DB_URL,
                 workdir: Optional[Path] = WORKDIR, as_json: bool = JSON) -> None:
    """List numbers and their tenants."""
    from supactl.database import tenants

    with _connect(db_url, workdir) as conn:
        rows = tenants.list_numbers(conn, tenant)
    if as_json:
        print_json({"numbers": [{"phone_number": n.phone_number, "tenant_id": n.tenant_id, "tenant": n.tenant_name}
                                for n in rows]})
        return
    print_table(("Number", "Tenant", "Tenant ID"), [(n.phone_number, n.tenant_name, n.tenant_id) for n in rows])


@numbers_app.command("remove")
@cli_errors
def numbers_remove(number: str = typer.Argument(..., help="The E.164 number to stop routing."),
                   db_url: Optional[str] = LOCAL_DB_URL, workdir: Optional[Path] = WORKDIR,
                   as_json: bool = JSON) -> None:
    """Stop routing NUMBER to its tenant."""
    from supactl.database import tenants

    with _connect(db_url, workdir) as conn:
        tenants.remove_number(conn, number)
    if as_json:
        print_json({"removed": number})
    else:
        echo(f"removed {number}")
