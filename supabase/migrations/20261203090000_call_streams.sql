-- Each stream of a call is accepted once, and a call whose stream is gone gets finalized.
--
-- A stream token (stream_token.ts) proves the function signed the TwiML, recently; it does not
-- prove the stream is the one the call is waiting for. The row does: the first stream claims
-- the call while nobody has (stream_seen_at is null), a resumed stream claims handoff n only
-- while the row says handed off after n - 1 (a compare-and-set), so a replayed webhook, token or
-- connect action finds the claim taken and gets nothing, and no transcript is restored into a
-- session that did not legitimately continue the call.

alter table public.calls add column stream_seen_at timestamptz;
comment on column public.calls.stream_seen_at is
  'When a stream of this call last proved it is alive: set when a stream claims the call, then '
  'refreshed by the bridge while it runs (a heartbeat). Null: no stream has claimed the call yet.';

-- The sweep's scan: only live rows, by the last sign of life. Tiny, whatever the size of the log.
create index calls_live_last_seen_idx on public.calls (greatest(started_at, stream_seen_at, handed_off_at))
  where status in ('in_progress', 'handed_off');

-- p_stream 0 is the call's first stream; n > 0 the stream that resumes handoff n. Returns the
-- claimed row, or nothing when the claim is not (or no longer) this stream's to take.
create function public.claim_call_stream(p_call_sid text, p_tenant_id uuid, p_stream integer)
returns setof public.calls
language sql
volatile
set search_path = ''
as $$
  update public.calls
     set stream_seen_at = now(), status = 'in_progress', end_reason = null, handoff_count = p_stream
   where call_sid = p_call_sid
     and tenant_id = p_tenant_id
     and case when p_stream = 0
              then status = 'in_progress' and stream_seen_at is null and handoff_count = 0
              else status = 'handed_off' and handoff_count = p_stream - 1
         end
  returning *;
$$;

-- Calls left in_progress or handed_off with no sign of life for p_stale become failed, with the
-- reason: the stream never opened, the bridge stopped (a worker died without finalizing), or no
-- stream came back after a handoff. Returns how many were finalized. The function calls it in the
-- background, at most once a minute per worker, never on a call's own path.
create function public.finalize_stale_calls(p_stale interval default interval '2 minutes')
returns integer
language sql
volatile
set search_path = ''
as $$
  with finalized as (
    update public.calls
       set status = 'failed',
           ended_at = now(),
           end_reason = case
             when status = 'handed_off' then 'stale: no stream resumed the call after its handoff'
             when stream_seen_at is null then 'stale: the stream never opened'
             else 'stale: the stream stopped without ending the call'
           end
     where status in ('in_progress', 'handed_off')
       and greatest(started_at, stream_seen_at, handed_off_at) < now() - p_stale
    returning 1
  )
  select count(*)::integer from finalized;
$$;

-- Only the bridge (service role) claims streams and sweeps; the API roles get neither.
revoke all on function public.claim_call_stream(text, uuid, integer) from public, anon, authenticated;
revoke all on function public.finalize_stale_calls(interval) from public, anon, authenticated;
grant execute on function public.claim_call_stream(text, uuid, integer) to service_role;
grant execute on function public.finalize_stale_calls(interval) to service_role;
