"""Tenant queries under RLS on a large call_turns, against the blog's policy shape as the baseline.

The baseline is the policy the product started from: the tenant read per row from a setting
(`current_setting('request.jwt.claim.tenant_id')`, which older PostgREST set), and no tenant index.
Ours: `tenant_id = (select public.current_tenant_id())` with the (tenant_id, created_at) index.
Timings are the server's own (EXPLAIN ANALYZE "Execution Time"), so client overhead is left out.
"""

from __future__ import annotations

import json
import random
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from supactl.database.connection import apply_local_bootstrap
from supactl.database.migrations import push
from supactl.dev_stack.postgres_server import EmbeddedPostgres, create_database
from supactl.project_files import bundled_migrations_dir

LATEST_50 = "select * from {table} order by created_at desc limit 50"
CALL_TURNS = "select * from {table} where call_sid = %s order by {order}"

BLOG_TABLE = """
create table public.call_turns_blog (
  id bigint generated always as identity primary key,
  tenant_id uuid not null,
  call_sid text not null,
  role text not null,
  text text not null,
  created_at timestamptz not null default now()
);
alter table public.call_turns_blog enable row level security;
grant select on public.call_turns_blog to authenticated;
create policy blog_tenant_read on public.call_turns_blog for select to authenticated
  using (tenant_id = current_setting('request.jwt.claim.tenant_id', true)::uuid);
"""


@dataclass
class QueryResult:
    name: str
    ours_ms: list[float]
    baseline_ms: list[float]

    def summary(self) -> dict:
        ours, base = _pcts(self.ours_ms), _pcts(self.baseline_ms)
        return {
            "query": self.name,
            "ours_p50_ms": ours[0],
            "ours_p99_ms": ours[1],
            "baseline_p50_ms": base[0],
            "baseline_p99_ms": base[1],
            "speedup_p50": round(base[0] / ours[0], 1) if ours[0] else None,
        }


def _pcts(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return round(statistics.median(ordered), 3), round(p99, 3)


def load(url: str, tenants: int, turns: int) -> None:
    calls_per_tenant = max(1, turns // tenants // 50)
    turns_per_call = max(1, turns // tenants // calls_per_tenant)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(BLOG_TABLE)
        conn.execute(
            f"""
            insert into public.tenants (name) select 'bench-' || g from generate_series(1, {tenants}) g;
            insert into public.calls (call_sid, tenant_id)
              select 'CA' || md5(t.id::text || c), t.id from public.tenants t, generate_series(1, {calls_per_tenant}) c;
            insert into public.call_turns (tenant_id, call_sid, role, text, item_id, seq, created_at)
              select c.tenant_id, c.call_sid, case when s % 2 = 0 then 'user' else 'assistant' end,
                     'a sentence of about this length, said on the phone', 'item_' || s, s,
                     now() - random() * interval '90 days'
              from public.calls c, generate_series(1, {turns_per_call}) s;
            insert into public.call_turns_blog (tenant_id, call_sid, role, text, created_at)
              select tenant_id, call_sid, role, text, created_at from public.call_turns;
            """
        )
        conn.execute("vacuum analyze")


def _explain_ms(conn, query: str, params: tuple, tenant: str, blog: bool) -> float:
    with conn.transaction():
        conn.execute("set local role authenticated")
        conn.execute(
            "select set_config('request.jwt.claims', %s, true)",
            (json.dumps({"role": "authenticated", "tenant_id": tenant}),),
        )
        if blog:
            conn.execute("select set_config('request.jwt.claim.tenant_id', %s, true)", (tenant,))
        plan = conn.execute("explain (analyze, format json) " + query, params).fetchone()[0]
    return float(plan[0]["Execution Time"])


def measure(url: str, samples: int, seed: int = 7) -> list[QueryResult]:
    rng = random.Random(seed)
    with psycopg.connect(url) as conn:
        calls = conn.execute("select tenant_id::text, call_sid from public.calls").fetchall()
        picks = [rng.choice(calls) for _ in range(samples)]
        latest = QueryResult("latest 50 turns of my tenant", [], [])
        by_call = QueryResult("all turns of a call, in order", [], [])
        for tenant, sid in picks:
            # Warm this tenant's pages once, unmeasured: a live tenant's recent turns are in cache,
            # and both shapes get the same treatment.
            for query, params, blog in (
                (LATEST_50.format(table="public.call_turns"), (), False),
                (LATEST_50.format(table="public.call_turns_blog"), (), True),
                (CALL_TURNS.format(table="public.call_turns", order="seq"), (sid,), False),
                (CALL_TURNS.format(table="public.call_turns_blog", order="created_at"), (sid,), True),
            ):
                _explain_ms(conn, query, params, tenant, blog)
            latest.ours_ms.append(_explain_ms(conn, LATEST_50.format(table="public.call_turns"), (), tenant, False))
            latest.baseline_ms.append(
                _explain_ms(conn, LATEST_50.format(table="public.call_turns_blog"), (), tenant, True)
            )
            by_call.ours_ms.append(
                _explain_ms(conn, CALL_TURNS.format(table="public.call_turns", order="seq"), (sid,), tenant, False)
            )
            by_call.baseline_ms.append(
                _explain_ms(conn, CALL_TURNS.format(table="public.call_turns_blog", order="created_at"), (sid,), tenant, True)
            )
    return [latest, by_call]


def run(tenants: int = 1000, turns: int = 1_000_000, samples: int = 200) -> dict:
    with tempfile.TemporaryDirectory(prefix="supactl-bench-pg-") as folder:
        server = EmbeddedPostgres(Path(folder))
        server.start()
        try:
            url = create_database(server.url(), "bench")
            apply_local_bootstrap(url)
            push(url, bundled_migrations_dir())
            started = time.perf_counter()
            load(url, tenants, turns)
            load_s = time.perf_counter() - started
            with psycopg.connect(url) as conn:
                rows = conn.execute("select count(*) from public.call_turns").fetchone()[0]
            results = measure(url, samples)
        finally:
            server.stop()
    return {
        "tenants": tenants,
        "turns": rows,
        "samples": samples,
        "load_seconds": round(load_s, 1),
        "queries": [r.summary() for r in results],
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
