-- Twilio's own view of each call (its status callbacks), recordings, and the tenant settings that
-- outbound calls and recordings follow.
--
-- The bridge's status/end_reason say what the stream saw; Twilio's callbacks say what the phone
-- network saw: whether the call was answered, by whom (AnsweredBy with machine detection), how long
-- it lasted. They arrive out of order and are retried, so record_twilio_call_status only ever moves
-- a call forward (queued < initiated < ringing < in-progress < a final status) and a final status,
-- once recorded, is never replaced. A call the bridge never finalized (the caller hung up while
-- its stream was being handed off, so no stream came back) is finalized from the final callback.

alter table public.calls
  add column direction text not null default 'inbound' check (direction in ('inbound', 'outbound')),
  add column twilio_status text check (
    twilio_status in ('queued', 'initiated', 'ringing', 'in-progress', 'completed', 'busy', 'no-answer',
      'failed', 'canceled')
  ),
  add column twilio_status_at timestamptz,
  add column twilio_duration_s integer check (twilio_duration_s >= 0),
  add column answered_by text check (answered_by ~ '^[a-z_]{1,32}$'),
  -- The per-call context of an outbound call, from its signed webhook URL (supactl dial --context):
  -- added to that call's instructions by every stream of the call.
  add column outbound_context jsonb check (
    outbound_context is null
    or (jsonb_typeof(outbound_context) = 'object' and octet_length(outbound_context::text) <= 4096)
  );
comment on column public.calls.twilio_status is
  'The latest CallStatus Twilio reported in a signed status callback; a final one is never replaced.';

-- How far along a CallStatus is: a callback of a lower or equal rank than the row's changes nothing.
create function public.twilio_call_status_rank(p_status text) returns integer
language sql immutable
set search_path = ''
as $$
  select case p_status
    when 'queued' then 1
    when 'initiated' then 2
    when 'ringing' then 3
    when 'in-progress' then 4
    when 'completed' then 5 when 'busy' then 5 when 'no-answer' then 5 when 'failed' then 5
    when 'canceled' then 5
    else 0
  end
$$;

-- One status callback. True when it moved the row, false when it was a retry, late, for an
-- unknown call, or for a call whose final status is already recorded.
create function public.record_twilio_call_status(
  p_call_sid text,
  p_status text,
  p_duration_s integer default null,
  p_answered_by text default null,
  p_event_at timestamptz default now()
)
returns boolean
language sql
volatile
set search_path = ''
as $$
  with moved as (
    update public.calls
       set twilio_status = p_status,
           twilio_status_at = p_event_at,
           twilio_duration_s = coalesce(p_duration_s, twilio_duration_s),
           answered_by = coalesce(p_answered_by, answered_by),
           -- Only a row no stream will finish any more: a live stream's bridge writes its own end.
           status = case
             when public.twilio_call_status_rank(p_status) = 5 and status = 'handed_off'
               then case when p_status = 'completed' then 'completed' else 'failed' end
             else status
           end,
           ended_at = case
             when public.twilio_call_status_rank(p_status) = 5 and status = 'handed_off'
               then coalesce(ended_at, p_event_at)
             else ended_at
           end,
           end_reason = case
             when public.twilio_call_status_rank(p_status) = 5 and status = 'handed_off'
               then 'twilio: call ' || p_status || ' during a handoff'
             else end_reason
           end
     where call_sid = p_call_sid
       and public.twilio_call_status_rank(p_status) > 0
       and public.twilio_call_status_rank(p_status) > coalesce(public.twilio_call_status_rank(twilio_status), 0)
    returning 1
  )
  select exists (select 1 from moved);
$$;

-- A call's recordings, as Twilio's recording status callback reported them. The audio stays at
-- Twilio (downloaded with the account's credentials by `supactl calls recording`); tenants see that
-- a recording exists, its length and channels, never a credential or a fetchable URL.
create table public.call_recordings (
  recording_sid text primary key check (recording_sid ~ '^RE[0-9a-fA-F]{32}$'),
  call_sid text not null,
  tenant_id uuid not null,
  status text not null check (status in ('in-progress', 'completed', 'absent', 'failed')),
  channels integer check (channels in (1, 2)),
  duration_s integer check (duration_s >= 0),
  updated_at timestamptz not null default now(),
  foreign key (call_sid, tenant_id) references public.calls (call_sid, tenant_id) on delete cascade
);
create index call_recordings_call_idx on public.call_recordings (call_sid);
create index call_recordings_tenant_idx on public.call_recordings (tenant_id, updated_at desc);

-- The tenant comes from the call row, never from the callback. Retries and late callbacks never
-- move a final recording status back. True when the row changed.
create function public.record_call_recording(
  p_call_sid text,
  p_recording_sid text,
  p_status text,
  p_channels integer default null,
  p_duration_s integer default null
)
returns boolean
language sql
volatile
set search_path = ''
as $$
  with written as (
    insert into public.call_recordings as r (recording_sid, call_sid, tenant_id, status, channels, duration_s)
    select p_recording_sid, c.call_sid, c.tenant_id, p_status, p_channels, p_duration_s
      from public.calls c where c.call_sid = p_call_sid
    on conflict (recording_sid) do update
      set status = excluded.status,
          channels = coalesce(excluded.channels, r.channels),
          duration_s = coalesce(excluded.duration_s, r.duration_s),
          updated_at = now()
      where r.status = 'in-progress' and r.call_sid = excluded.call_sid
    returning 1
  )
  select exists (select 1 from written);
$$;

alter table public.call_recordings enable row level security;
revoke all on public.call_recordings from anon, authenticated;
grant select on public.call_recordings to authenticated;
grant all on public.call_recordings to service_role;
create policy call_recordings_select_own on public.call_recordings
  for select to authenticated using (tenant_id = (select public.current_tenant_id()));

revoke all on function public.twilio_call_status_rank(text) from public, anon, authenticated;
revoke all on function public.record_twilio_call_status(text, text, integer, text, timestamptz)
  from public, anon, authenticated;
revoke all on function public.record_call_recording(text, text, text, integer, integer)
  from public, anon, authenticated;
grant execute on function public.twilio_call_status_rank(text) to service_role;
grant execute on function public.record_twilio_call_status(text, text, integer, text, timestamptz)
  to service_role;
grant execute on function public.record_call_recording(text, text, text, integer, integer) to service_role;

-- Outbound and recording settings of a tenant's agent. Recording is off unless the tenant turns it
-- on: recording a call needs the consent of everyone on it in two-party-consent places (e.g.
-- California, Florida, Washington, much of the EU); the tenant's greeting must say so.
alter table public.tenant_agents
  add column outbound_greeting text not null default '' check (char_length(outbound_greeting) <= 1000),
  add column voicemail_action text not null default 'hang_up'
    check (voicemail_action in ('hang_up', 'message')),
  add column voicemail_message text not null default '' check (char_length(voicemail_message) <= 1000),
  add column record_calls boolean not null default false;

grant insert (outbound_greeting, voicemail_action, voicemail_message, record_calls),
  update (outbound_greeting, voicemail_action, voicemail_message, record_calls)
  on public.tenant_agents to authenticated;
