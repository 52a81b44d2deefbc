"""The tenant's questions stay index lookups under RLS, with the tenant function run once."""

from __future__ import annotations

import json

import psycopg
import pytest

TENANTS = 40
TURNS_PER_CALL = 25
CALLS_PER_TENANT = 20  # 40 * 20 * 25 = 20,000 turns: enough for the planner to prefer an index


@pytest.fixture(scope="module")
def loaded_db(db_url):
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            f"""
            insert into public.tenants (name) select 'plan-' || g from generate_series(1, {TENANTS}) g;
            insert into public.calls (call_sid, tenant_id)
              select 'CA' || md5(t.id::text || c), t.id
              from public.tenants t, generate_series(1, {CALLS_PER_TENANT}) c where t.name like 'plan-%';
            insert into public.call_turns (tenant_id, call_sid, role, text, item_id, seq, created_at)
              select c.tenant_id, c.call_sid, case when s % 2 = 0 then 'user' else 'assistant' end,
                     'turn ' || s, 'item_' || s, s, now() - (random() * interval '30 days')
              from public.calls c, generate_series(1, {TURNS_PER_CALL}) s
              where c.call_sid like 'CA%' and c.tenant_id in (select id from public.tenants where name like 'plan-%');
            insert into public.tenant_phone_numbers (phone_number, tenant_id)
              select '+1555' || lpad((row_number() over ())::text, 7, '0'), t.id
              from public.tenants t, generate_series(1, 50) where t.name like 'plan-%';
            analyze;
            """
        )
        tenant, sid = conn.execute(
            "select t.id::text, c.call_sid from public.tenants t join public.calls c on c.tenant_id = t.id "
            "where t.name = 'plan-7' limit 1"
        ).fetchone()
    return db_url, tenant, sid


def plan_as_tenant(url: str, tenant: str, query: str, params: tuple = ()) -> dict:
    with psycopg.connect(url) as conn, conn.transaction():
        conn.execute("set local role authenticated")
        conn.execute(
            "select set_config('request.jwt.claims', %s, true)",
            (json.dumps({"role": "authenticated", "tenant_id": tenant}),),
        )
        rows = conn.execute("explain (analyze, format json) " + query, params).fetchone()[0]
    return rows[0]["Plan"]


def nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def test_latest_50_turns_of_my_tenant_use_the_tenant_index_and_one_initplan(loaded_db):
    url, tenant, _ = loaded_db
    plan = plan_as_tenant(url, tenant, "select * from public.call_turns order by created_at desc limit 50")
    all_nodes = list(nodes(plan))
    scans = [n for n in all_nodes if n["Node Type"] in ("Index Scan", "Index Only Scan", "Bitmap Index Scan")]
    assert any(n.get("Index Name") == "call_turns_tenant_created_idx" for n in scans), json.dumps(plan)
    assert not any(n["Node Type"] == "Seq Scan" for n in all_nodes)
    initplans = [n for n in all_nodes if n.get("Parent Relationship") == "InitPlan"]
    assert len(initplans) == 1 and initplans[0]["Actual Loops"] == 1, json.dumps(plan)
    assert plan["Actual Rows"] == 50


def test_all_turns_of_a_call_in_order_use_the_call_index(loaded_db):
    url, tenant, sid = loaded_db
    plan = plan_as_tenant(url, tenant, "select * from public.call_turns where call_sid = %s order by seq", (sid,))
    all_nodes = list(nodes(plan))
    assert any(
        n.get("Index Name") in ("call_turns_call_seq_idx", "call_turns_call_sid_item_id_key") for n in all_nodes
    ), json.dumps(plan)
    assert not any(n["Node Type"] == "Seq Scan" for n in all_nodes)
    assert plan["Actual Rows"] == TURNS_PER_CALL


def test_finding_the_owner_of_a_called_number_is_a_primary_key_lookup(loaded_db):
    url, _, _ = loaded_db
    with psycopg.connect(url) as conn:
        plan = conn.execute(
            "explain (format json) select tenant_id from public.tenant_phone_numbers where phone_number = '+15550000123'"
        ).fetchone()[0][0]["Plan"]
    assert plan["Node Type"] in ("Index Scan", "Index Only Scan") or any(
        n["Node Type"] in ("Index Scan", "Index Only Scan") for n in nodes(plan)
    )
