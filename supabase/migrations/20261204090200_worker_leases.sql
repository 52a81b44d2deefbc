-- Crash resume: which worker serves a call's stream, and whether that worker is still alive.
--
-- A worker killed without draining (kill -9, OOM, a node lost) leaves its calls in_progress with
-- their stream claimed; Twilio's stream ends and the <Connect action> lands on another worker. That
-- request is signed but carries no time, so a captured one replayed during a live call looks the
-- same. The difference is the owner: a crashed worker stops renewing its lease. The connect action
-- resumes an in_progress call only once the lease of the worker whose stream claimed it has lapsed
-- (resume_crashed_call), a compare-and-set on the row's status and handoff_count, so each crash is
-- resumed once and a replay while the owner lives changes nothing.

-- One row per worker process, renewed about once a second (one write per worker, not per call).
-- Only the function's service role reads or writes it: no tenant data, no tenant access.
create table public.worker_leases (
  worker_id uuid primary key,
  renewed_at timestamptz not null default now()
);
comment on table public.worker_leases is
  'Liveness of the workers serving media streams: a worker renews its row about once a second while '
  'it runs and deletes it once a drain has handed its calls off. A lapsed row means its calls may '
  'be resumed elsewhere. Written only by the function (service role).';
alter table public.worker_leases enable row level security;
-- No policy: anon and authenticated see and write nothing (and hold no privilege either).
revoke all on table public.worker_leases from public, anon, authenticated;
grant select, insert, update, delete on table public.worker_leases to service_role;

alter table public.calls add column stream_worker_id uuid;
comment on column public.calls.stream_worker_id is
  'The worker (worker_leases.worker_id) whose stream last claimed the call; null when the claim '
  'named none (a worker without a lease, as on the hosted Edge Runtime): such a call is never '
  'resumed after a crash.';

create function public.renew_worker_lease(p_worker_id uuid)
returns void
language sql
volatile
set search_path = ''
as $$
  insert into public.worker_leases (worker_id, renewed_at) values (p_worker_id, now())
  on conflict (worker_id) do update set renewed_at = excluded.renewed_at;
$$;

create function public.release_worker_lease(p_worker_id uuid)
returns void
language sql
volatile
set search_path = ''
as $$
  delete from public.worker_leases where worker_id = p_worker_id;
$$;

-- The claim of 20261203090000 (unchanged, called first), recording the claiming worker; the lease
-- is renewed in the same transaction, so a call is never owned by a worker without a fresh lease,
-- even before its first renewal. A null p_worker_id names no worker (never resumed after a crash).
create function public.claim_call_stream(p_call_sid text, p_tenant_id uuid, p_stream integer,
                                         p_worker_id uuid)
returns setof public.calls
language plpgsql
volatile
set search_path = ''
as $$
begin
  perform 1 from public.claim_call_stream(p_call_sid, p_tenant_id, p_stream);
  if not found then
    return;
  end if;
  if p_worker_id is not null then
    perform public.renew_worker_lease(p_worker_id);
  end if;
  return query
    update public.calls set stream_worker_id = p_worker_id where call_sid = p_call_sid returning *;
end;
$$;

-- A call whose stream's worker has not renewed its lease for p_lapse_ms becomes handed_off (reason
-- p_end_reason), as a handoff leaves it, so the next stream claims it as handoff
-- p_handoff_count + 1. Only while the row is still in_progress at p_handoff_count with a claimed
-- stream of a named worker: done once per crash; nothing when the owner is alive.
create function public.resume_crashed_call(p_call_sid text, p_handoff_count integer, p_lapse_ms integer,
                                           p_end_reason text)
returns setof public.calls
language sql
volatile
set search_path = ''
as $$
  update public.calls c
     set status = 'handed_off', end_reason = p_end_reason, handed_off_at = now()
   where c.call_sid = p_call_sid
     and c.status = 'in_progress'
     and c.handoff_count = p_handoff_count
     and c.stream_seen_at is not null
     and c.stream_worker_id is not null
     and not exists (
       select 1 from public.worker_leases l
        where l.worker_id = c.stream_worker_id and l.renewed_at > now() - make_interval(secs => p_lapse_ms / 1000.0)
     )
  returning *;
$$;

revoke all on function public.renew_worker_lease(uuid) from public, anon, authenticated;
revoke all on function public.release_worker_lease(uuid) from public, anon, authenticated;
revoke all on function public.claim_call_stream(text, uuid, integer, uuid) from public, anon, authenticated;
revoke all on function public.resume_crashed_call(text, integer, integer, text) from public, anon, authenticated;
grant execute on function public.renew_worker_lease(uuid) to service_role;
grant execute on function public.release_worker_lease(uuid) to service_role;
grant execute on function public.claim_call_stream(text, uuid, integer, uuid) to service_role;
grant execute on function public.resume_crashed_call(text, integer, integer, text) to service_role;
