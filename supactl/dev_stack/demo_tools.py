"""The dev demo tenant's tools: an SQL lookup over a small table of its own, and the two built-ins.

`supactl dev` adds them so a local call shows every kind of action with no OpenAI key: the loopback
model calls the session's N-th tool when the caller presses N (`supactl call --dtmf 1`). The
lookup runs as the tenant's user under RLS: the table also holds another tenant's order, which the
tool can never return.
"""

from __future__ import annotations

from supactl.database import tools
from supactl.database.tools import ToolTarget

DEMO_TRANSFER_NUMBER = "+15555550199"
_OTHER_TENANT = "Demo neighbour (RLS)"

_SCHEMA_SQL = """
create schema if not exists demo;
create table if not exists demo.orders (
  order_id text primary key,
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  status text not null
);
alter table demo.orders enable row level security;
drop policy if exists orders_of_my_tenant on demo.orders;
create policy orders_of_my_tenant on demo.orders
  for select to authenticated using (tenant_id = (select public.current_tenant_id()));
revoke all on demo.orders from anon, authenticated;
grant usage on schema demo to authenticated;
grant select on demo.orders to authenticated;
-- SECURITY INVOKER (the default): it sees only what the calling tenant's RLS lets it see.
create or replace function demo.lookup_order(args jsonb) returns jsonb
language sql stable set search_path = '' as $$
  select coalesce(
    (select jsonb_build_object('order_id', o.order_id, 'status', o.status)
       from demo.orders o where o.order_id = args ->> 'order_id'),
    jsonb_build_object('error', 'no order ' || coalesce(args ->> 'order_id', '(none)') || ' for this caller'))
$$;
revoke all on function demo.lookup_order(jsonb) from public, anon;
grant execute on function demo.lookup_order(jsonb) to authenticated;
"""

ORDER_PARAMETERS = {
    "type": "object",
    "properties": {"order_id": {"type": "string", "description": "The order number the caller gives",
                                "examples": ["1001"]}},
    "required": ["order_id"],
}


def add_demo_tools(conn, tenant_id: str) -> list[str]:
    """Idempotent: the schema, two orders (one of another tenant), and the three tools; returns the
    names of the tools it added."""
    from supactl.database.tenants import TenantError, add_tenant, find_tenant

    conn.execute(_SCHEMA_SQL)
    try:
        neighbour = find_tenant(conn, _OTHER_TENANT)
    except TenantError:
        neighbour = add_tenant(conn, _OTHER_TENANT)
    conn.execute("insert into demo.orders (order_id, tenant_id, status) values ('1001', %s, 'shipped'), "
                 "('2002', %s, 'delivered') on conflict do nothing", (tenant_id, neighbour.id))
    wanted = [
        ("lookup_order", "Look up the status of the caller's order by its number.", ToolTarget(sql="demo.lookup_order"),
         ORDER_PARAMETERS),
        ("transfer_to_human", "Transfer the caller to a person when they ask for one.",
         ToolTarget(transfer_to=DEMO_TRANSFER_NUMBER), None),
        ("end_call", "End the call after saying goodbye, when the caller is done.", ToolTarget(end_call=True), None),
    ]
    present = {tool.name for tool in tools.list_tools(conn, tenant_id)}
    added = []
    for name, description, target, parameters in wanted:
        if name not in present:
            tools.add_tool(conn, tenant_id, name, description, target, parameters=parameters)
            added.append(name)
    return added
