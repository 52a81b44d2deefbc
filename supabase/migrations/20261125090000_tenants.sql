-- Tenants and the phone numbers they own: the bridge tags every call with the tenant that owns
-- the called number.

create table public.tenants (
  id uuid primary key default gen_random_uuid(),
  name text not null unique check (length(btrim(name)) between 1 and 200),
  created_at timestamptz not null default now()
);

create table public.tenant_phone_numbers (
  -- E.164: a plus, a country code that does not start with 0, at most 15 digits in all.
  phone_number text primary key check (phone_number ~ '^\+[1-9][0-9]{1,14}$'),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  created_at timestamptz not null default now()
);

create index tenant_phone_numbers_tenant_id_idx on public.tenant_phone_numbers (tenant_id);

-- Per-tenant agent settings read at call start. A missing row, or a null column, means the
-- bridge's default for that setting.
create table public.tenant_agents (
  tenant_id uuid primary key references public.tenants (id) on delete cascade,
  instructions text,
  voice text,
  greeting text, -- null: the caller speaks first
  model text,
  transcription_model text,
  turn_detection jsonb check (turn_detection is null or jsonb_typeof(turn_detection) = 'object'),
  updated_at timestamptz not null default now()
);
