-- Leases of crashed workers are swept. A worker killed without draining never deletes its
-- worker_leases row; without a sweep every crash (and every OOM kill of a fleet's life) leaves one.
-- Each renewal now also deletes leases lapsed for LEASE_SWEEP_AFTER (10 minutes): long past the
-- crash resume's decision (a lapse of 3 s, a wait of at most 5 s), and a missing lease reads as a
-- lapsed one in resume_crashed_call, so the sweep changes no decision. A live worker whose
-- renewals stalled that long recreates its row with its next renewal (insert ... on conflict).

create or replace function public.renew_worker_lease(p_worker_id uuid)
returns void
language sql
volatile
set search_path = ''
as $$
  delete from public.worker_leases
   where renewed_at < now() - interval '10 minutes' and worker_id <> p_worker_id;
  insert into public.worker_leases (worker_id, renewed_at) values (p_worker_id, now())
  on conflict (worker_id) do update set renewed_at = excluded.renewed_at;
$$;

revoke all on function public.renew_worker_lease(uuid) from public, anon, authenticated;
grant execute on function public.renew_worker_lease(uuid) to service_role;
