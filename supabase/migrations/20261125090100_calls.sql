-- The call log and its transcript. Only the service role (the bridge) writes here.

create table public.calls (
  call_sid text primary key check (call_sid ~ '^CA[0-9A-Za-z]{32}$'),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  from_number text,
  to_number text,
  started_at timestamptz not null default now(),
  ended_at timestamptz,
  status text not null default 'in_progress'
    check (status in ('in_progress', 'completed', 'failed', 'handed_off')),
  end_reason text,
  usage jsonb not null default '{}'::jsonb,
  handoff_count integer not null default 0 check (handoff_count >= 0),
  handed_off_at timestamptz,
  -- Lets call_turns prove its tenant is its call's tenant.
  unique (call_sid, tenant_id)
);

create index calls_tenant_started_idx on public.calls (tenant_id, started_at desc);

create table public.call_turns (
  id bigint generated always as identity primary key,
  tenant_id uuid not null,
  call_sid text not null,
  role text not null check (role in ('user', 'assistant')),
  text text not null,
  -- The Realtime conversation item this turn came from: a retried write hits the unique key.
  item_id text not null,
  -- Position of the turn in the conversation (not arrival order: a caller's transcript can
  -- arrive after the reply to it).
  seq integer not null,
  interrupted boolean not null default false,
  created_at timestamptz not null default now(),
  unique (call_sid, item_id),
  foreign key (call_sid, tenant_id) references public.calls (call_sid, tenant_id) on delete cascade
);

-- "Latest turns of my tenant" and "all turns of a call, in order".
create index call_turns_tenant_created_idx on public.call_turns (tenant_id, created_at desc);
create index call_turns_call_seq_idx on public.call_turns (call_sid, seq);
