"""Tenant members: the Supabase Auth users whose `app_metadata.tenant_id` names a tenant.

Row-level security reads the tenant from the JWT (`public.current_tenant_id()`), and Supabase Auth
copies `app_metadata` into every token it issues. Only the service role can write `app_metadata`;
`user_metadata` is editable by the user and is never read or written here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx

from supactl.cloud import auth_admin
from supactl.cloud.auth_admin import AuthUser
from supactl.errors import SupactlError

TENANT_CLAIM = "tenant_id"
# Deliberately loose (one @, a dot in the domain, no spaces): Auth does the real validation; this
# only catches typos before a request is made.
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")


class MemberError(SupactlError):
    """Invalid input for a member command (exit 1)."""


@dataclass(frozen=True)
class MemberChange:
    user: AuthUser
    action: str  # added | invited | moved | unchanged | removed
    previous_tenant_id: str | None = None


def normalize_email(email: str) -> str:
    value = email.strip()
    if not EMAIL.match(value):
        raise MemberError(f"{email!r} is not an email address", hint="e.g. ana@example.com")
    return value.lower()


def tenant_of(user: AuthUser) -> str | None:
    value = user.app_metadata.get(TENANT_CLAIM)
    return value if isinstance(value, str) else None


def add_member(client: httpx.Client, email: str, tenant_id: str, *, invite: bool = False,
               move: bool = False) -> MemberChange:
    """Put the user with `email` into `tenant_id`. A user in another tenant is refused unless `move`;
    an email with no account is refused unless `invite` (Supabase then emails an invite link)."""
    email = normalize_email(email)
    user = auth_admin.find_user_by_email(client, email)
    action = "added"
    previous = tenant_of(user) if user else None
    if user is None:
        if not invite:
            raise MemberError(f"no Supabase Auth user with email {email}",
                              hint="pass --invite to send Supabase's invite email, or let them sign up first")
        user = auth_admin.invite(client, email)
        action = "invited"
    elif previous == tenant_id:
        return MemberChange(user, "unchanged", previous)
    elif previous is not None:
        if not move:
            raise MemberError(f"{email} is a member of tenant {previous}",
                              hint="pass --move to move them (a user reads one tenant at a time)")
        action = "moved"
    updated = auth_admin.update_app_metadata(client, user.id, {TENANT_CLAIM: tenant_id})
    return MemberChange(updated, action, previous)


def remove_member(client: httpx.Client, email: str, tenant_id: str) -> MemberChange:
    email = normalize_email(email)
    user = auth_admin.find_user_by_email(client, email)
    if user is None:
        raise MemberError(f"no Supabase Auth user with email {email}", hint="supactl members list shows members")
    if tenant_of(user) != tenant_id:
        raise MemberError(f"{email} is not a member of tenant {tenant_id}", hint="supactl members list shows members")
    # null deletes the key in GoTrue's merge; the other app_metadata keys stay.
    updated = auth_admin.update_app_metadata(client, user.id, {TENANT_CLAIM: None})
    return MemberChange(updated, "removed", tenant_id)


def list_members(client: httpx.Client, tenant_id: str | None = None, **paging: int) -> list[AuthUser]:
    return [u for u in auth_admin.list_users(client, **paging)
            if tenant_of(u) is not None and (tenant_id is None or tenant_of(u) == tenant_id)]


def tenants_without_members(conn, client: httpx.Client) -> list[tuple[str, str]]:
    """(id, name) of each tenant that has calls but no member to read them (for `doctor`)."""
    with_calls = conn.execute(
        "select t.id::text, t.name from public.tenants t"
        " where exists (select 1 from public.calls c where c.tenant_id = t.id) order by t.name").fetchall()
    if not with_calls:
        return []
    served = {tenant_of(u) for u in list_members(client)}
    return [(tid, name) for tid, name in with_calls if tid not in served]
