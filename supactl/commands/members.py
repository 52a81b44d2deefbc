"""`supactl members …`: who may read a tenant's calls (Supabase Auth users, via the admin API)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from supactl.commands._options import DB_URL, JSON, PROJECT_REF, VERBOSE, WORKDIR, project, trace_sink
from supactl.commands._output import cli_errors, command_group, echo, print_json

members_app = command_group("Let people read a tenant's calls (Supabase Auth users).")

TENANT = typer.Option(..., "--tenant", help="Tenant id or name.")
SERVICE_ROLE_KEY = typer.Option(None, "--service-role-key",
                                help="Default: SUPABASE_SERVICE_ROLE_KEY (environment, then .env). Never printed.")


def _tenant(db_url: Optional[str], workdir: Optional[Path], tenant: str):
    from supactl import config
    from supactl.database import tenants
    from supactl.database.connection import connect

    with connect(config.db_url(db_url, project_dir=project(workdir)), autocommit=True) as conn:
        return tenants.find_tenant(conn, tenant)


def _client(workdir: Optional[Path], key: Optional[str], project_ref: Optional[str], verbose: bool):
    from supactl.cloud import auth_admin

    settings = auth_admin.auth_settings(service_role_key_flag=key, project_ref_flag=project_ref,
                                       project_dir=project(workdir))
    return auth_admin.auth_admin_client(settings, trace=trace_sink(verbose))


def _user_json(user, tenant_id=None) -> dict:
    from supactl.cloud.members import tenant_of

    return {"id": user.id, "email": user.email, "tenant_id": tenant_id or tenant_of(user),
            "invited_at": user.invited_at, "last_sign_in_at": user.last_sign_in_at}


@members_app.command("add")
@cli_errors
def members_add(
    email: str = typer.Argument(..., help="The user's email address."),
    tenant: str = TENANT,
    invite: bool = typer.Option(False, "--invite", help="Send Supabase's invite email if there is no account yet."),
    move: bool = typer.Option(False, "--move", help="Move a user who is a member of another tenant."),
    db_url: Optional[str] = DB_URL, workdir: Optional[Path] = WORKDIR, project_ref: Optional[str] = PROJECT_REF,
    service_role_key: Optional[str] = SERVICE_ROLE_KEY, as_json: bool = JSON, verbose: bool = VERBOSE,
) -> None:
    """Let EMAIL read TENANT's calls: sets app_metadata.tenant_id, keeping the rest of app_metadata."""
    from supactl.cloud import members

    members.normalize_email(email)  # a typo is reported before any connection is tried
    found = _tenant(db_url, workdir, tenant)
    with _client(workdir, service_role_key, project_ref, verbose) as client:
        change = members.add_member(client, email, found.id, invite=invite, move=move)
    if as_json:
        print_json({**_user_json(change.user), "action": change.action,
                    "previous_tenant_id": change.previous_tenant_id})
    else:
        echo(f"{change.action}: {change.user.email} -> {found.name}"
             + (" (they sign in again to get a token for it)" if change.action != "unchanged" else ""))


@members_app.command("list")
@cli_errors
def members_list(
    tenant: Optional[str] = typer.Option(None, "--tenant", help="Only this tenant's members."),
    db_url: Optional[str] = DB_URL, workdir: Optional[Path] = WORKDIR, project_ref: Optional[str] = PROJECT_REF,
    service_role_key: Optional[str] = SERVICE_ROLE_KEY, as_json: bool = JSON, verbose: bool = VERBOSE,
) -> None:
    """List the users who belong to a tenant."""
    from supactl.cloud import members

    tenant_id = _tenant(db_url, workdir, tenant).id if tenant else None
    with _client(workdir, service_role_key, project_ref, verbose) as client:
        rows = members.list_members(client, tenant_id)
    if as_json:
        print_json({"members": [_user_json(u) for u in rows]})
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("Email", "Tenant ID", "User ID", "Invited")
    for u in rows:
        table.add_row(u.email or "", members.tenant_of(u) or "", u.id, u.invited_at or "")
    Console().print(table)


@members_app.command("remove")
@cli_errors
def members_remove(
    email: str = typer.Argument(..., help="The user's email address."),
    tenant: str = TENANT,
    db_url: Optional[str] = DB_URL, workdir: Optional[Path] = WORKDIR, project_ref: Optional[str] = PROJECT_REF,
    service_role_key: Optional[str] = SERVICE_ROLE_KEY, as_json: bool = JSON, verbose: bool = VERBOSE,
) -> None:
    """Stop EMAIL reading TENANT's calls (their next token carries no tenant; the account stays)."""
    from supactl.cloud import members

    members.normalize_email(email)
    found = _tenant(db_url, workdir, tenant)
    with _client(workdir, service_role_key, project_ref, verbose) as client:
        change = members.remove_member(client, email, found.id)
    if as_json:
        print_json({**_user_json(change.user), "action": "removed", "previous_tenant_id": found.id})
    else:
        echo(f"removed: {change.user.email} from {found.name} (tokens already issued stay valid until they expire)")
