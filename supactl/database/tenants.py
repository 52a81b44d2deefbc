"""Tenants and the phone numbers they own (which tenant a call belongs to)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from supactl.errors import SupactlError

E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
_SEPARATORS = re.compile(r"[\s\-().]")


class TenantError(SupactlError):
    pass


@dataclass(frozen=True)
class Tenant:
    id: str
    name: str
    created_at: datetime


@dataclass(frozen=True)
class PhoneNumber:
    phone_number: str
    tenant_id: str
    tenant_name: str


def normalize_e164(number: str) -> str:
    """'+1 (415) 555-0100' -> '+14155550100'; anything else that is not E.164 is refused."""
    compact = _SEPARATORS.sub("", number.strip())
    if not E164.match(compact):
        raise TenantError(
            f"{number!r} is not an E.164 phone number",
            hint="use a plus, the country code and the number, digits only: e.g. +14155550100",
        )
    return compact


def add_tenant(conn, name: str) -> Tenant:
    clean = name.strip()
    if not clean:
        raise TenantError("a tenant needs a name", hint="supactl tenants add 'Acme Dental'")
    row = conn.execute(
        "insert into public.tenants (name) values (%s) on conflict (name) do nothing "
        "returning id::text, name, created_at",
        (clean,),
    ).fetchone()
    if row is None:
        raise TenantError(f"a tenant named {clean!r} already exists", hint="supactl tenants list")
    return Tenant(*row)


def list_tenants(conn) -> list[Tenant]:
    rows = conn.execute("select id::text, name, created_at from public.tenants order by created_at, name").fetchall()
    return [Tenant(*row) for row in rows]


def find_tenant(conn, id_or_name: str) -> Tenant:
    try:
        as_uuid = str(uuid.UUID(id_or_name))
    except ValueError:
        as_uuid = None
    row = conn.execute(
        "select id::text, name, created_at from public.tenants where id::text = %s or name = %s",
        (as_uuid, id_or_name.strip()),
    ).fetchone()
    if row is None:
        raise TenantError(f"no tenant {id_or_name!r}", hint="supactl tenants list shows ids and names")
    return Tenant(*row)


def add_number(conn, number: str, tenant: str) -> tuple[PhoneNumber, bool]:
    """Give `number` to `tenant` (id or name). Returns the number and whether anything changed."""
    e164 = normalize_e164(number)
    owner = find_tenant(conn, tenant)
    current = conn.execute(
        "select t.id::text, t.name from public.tenant_phone_numbers n join public.tenants t on t.id = n.tenant_id "
        "where n.phone_number = %s",
        (e164,),
    ).fetchone()
    if current is not None:
        if current[0] == owner.id:
            return PhoneNumber(e164, owner.id, owner.name), False
        raise TenantError(
            f"{e164} already belongs to tenant {current[1]!r}",
            hint=f"supactl numbers remove {e164} first, if it should move",
        )
    conn.execute(
        "insert into public.tenant_phone_numbers (phone_number, tenant_id) values (%s, %s)", (e164, owner.id)
    )
    return PhoneNumber(e164, owner.id, owner.name), True


def list_numbers(conn, tenant: str | None = None) -> list[PhoneNumber]:
    query = (
        "select n.phone_number, t.id::text, t.name from public.tenant_phone_numbers n "
        "join public.tenants t on t.id = n.tenant_id"
    )
    params: tuple = ()
    if tenant is not None:
        query += " where t.id = %s"
        params = (find_tenant(conn, tenant).id,)
    rows = conn.execute(query + " order by t.name, n.phone_number", params).fetchall()
    return [PhoneNumber(*row) for row in rows]


def remove_number(conn, number: str) -> None:
    e164 = normalize_e164(number)
    deleted = conn.execute("delete from public.tenant_phone_numbers where phone_number = %s", (e164,)).rowcount
    if not deleted:
        raise TenantError(f"{e164} is not assigned to any tenant", hint="supactl numbers list")
