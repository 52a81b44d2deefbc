-- The agent acts: each tenant's tools, the key that signs its HTTP tool requests, and every tool
-- call stored with its call.
--
-- A tool is what the model may call during that tenant's calls (the Realtime API's
-- session.tools): an HTTP endpoint of the tenant's (POSTed a signed JSON body), a Postgres
-- function of the tenant's (run as `authenticated` with the tenant's claims, so RLS decides what
-- it sees), or one of the built-ins: transfer to a number, end the call.

create table public.tenant_tools (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  -- The Realtime API's function-name rule.
  name text not null check (name ~ '^[A-Za-z0-9_-]{1,64}$'),
  description text not null check (char_length(description) between 1 and 1024),
  -- A JSON Schema object (checked by supactl before it is stored; here: its shape and size).
  parameters jsonb not null default '{"type": "object", "properties": {}}'::jsonb
    check (jsonb_typeof(parameters) = 'object' and parameters ->> 'type' = 'object'
           and length(parameters::text) <= 16000),
  kind text not null check (kind in ('http', 'sql', 'transfer', 'end_call')),
  http_url text check (http_url ~ '^https?://[^/\s?#@]+' and char_length(http_url) <= 2000),
  -- schema.function, taking (args jsonb) and returning jsonb; checked by the trigger below.
  sql_function text check (sql_function ~ '^[a-z_][a-z0-9_]{0,62}\.[a-z_][a-z0-9_]{0,62}$'),
  transfer_to text check (transfer_to ~ '^\+[1-9][0-9]{6,14}$'),
  -- A SECURITY DEFINER function runs with its owner's rights and so past the tenant's RLS:
  -- refused unless someone with the service role says so, per tool.
  allow_security_definer boolean not null default false,
  timeout_ms integer not null default 5000 check (timeout_ms between 100 and 30000),
  enabled boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (tenant_id, name),
  -- Exactly the target its kind needs.
  check (
    case kind
      when 'http' then http_url is not null and sql_function is null and transfer_to is null
      when 'sql' then sql_function is not null and http_url is null and transfer_to is null
      when 'transfer' then transfer_to is not null and http_url is null and sql_function is null
      else http_url is null and sql_function is null and transfer_to is null
    end
  )
);

-- A tool's SQL function must exist, take (jsonb), return jsonb, and not be SECURITY DEFINER
-- unless allowed: checked on every write, whoever writes.
create function public.check_tenant_tool() returns trigger
language plpgsql
set search_path = ''
as $$
declare
  fn regprocedure;
  definer boolean;
  returns_jsonb boolean;
begin
  if new.kind <> 'sql' then
    return new;
  end if;
  fn := to_regprocedure(new.sql_function || '(jsonb)');
  if fn is null then
    raise exception 'tool %: function %(jsonb) does not exist', new.name, new.sql_function
      using errcode = '42883', hint = 'create it as: create function ' || new.sql_function || '(args jsonb) returns jsonb';
  end if;
  select p.prosecdef, p.prorettype = 'jsonb'::regtype into definer, returns_jsonb
  from pg_catalog.pg_proc p where p.oid = fn;
  if not returns_jsonb then
    raise exception 'tool %: function %(jsonb) must return jsonb', new.name, new.sql_function using errcode = '42P13';
  end if;
  if definer and not new.allow_security_definer then
    raise exception 'tool %: function %(jsonb) is SECURITY DEFINER, which would bypass the tenant''s row-level security',
      new.name, new.sql_function
      using errcode = '42501', hint = 'make it SECURITY INVOKER, or allow it explicitly (supactl tools add --allow-security-definer)';
  end if;
  return new;
end
$$;

create trigger tenant_tools_check before insert or update on public.tenant_tools
  for each row execute function public.check_tenant_tool();

-- The key that signs this tenant's HTTP tool requests (HMAC-SHA256); the function and supactl
-- read it with the service role, the tenant's users never see it through the API.
create table public.tenant_tool_keys (
  tenant_id uuid primary key references public.tenants (id) on delete cascade,
  signing_key text not null default (
    replace(gen_random_uuid()::text, '-', '') || replace(gen_random_uuid()::text, '-', '')
  ) check (signing_key ~ '^[0-9a-f]{64}$'),
  created_at timestamptz not null default now()
);

-- Every tool call of a call, in conversation order (seq shares the turns' numbering).
create table public.call_tool_calls (
  id bigint generated always as identity primary key,
  tenant_id uuid not null,
  call_sid text not null,
  seq integer not null,
  -- The Realtime function_call item's call_id: a retried write hits the unique key.
  call_id text not null check (char_length(call_id) <= 128),
  name text not null check (char_length(name) <= 64),
  arguments jsonb not null default '{}'::jsonb,
  -- Capped by the bridge (8 KB) before it is stored.
  output text not null check (char_length(output) <= 8192),
  status text not null check (status in ('ok', 'error', 'timeout')),
  duration_ms integer not null check (duration_ms >= 0),
  created_at timestamptz not null default now(),
  unique (call_sid, call_id),
  foreign key (call_sid, tenant_id) references public.calls (call_sid, tenant_id) on delete cascade
);

create index call_tool_calls_call_seq_idx on public.call_tool_calls (call_sid, seq);

-- Transfers and hang-ups on the call row.
alter table public.calls
  add column transfer_to text,
  add column transfer_outcome text;

alter table public.tenant_tools enable row level security;
alter table public.tenant_tool_keys enable row level security;
alter table public.call_tool_calls enable row level security;

revoke all on public.tenant_tools, public.tenant_tool_keys, public.call_tool_calls from anon, authenticated;
revoke all on function public.check_tenant_tool() from public, anon, authenticated;
grant select on public.tenant_tools, public.call_tool_calls to authenticated;
-- A tenant's users edit its tools; allow_security_definer stays with the service role.
grant insert (tenant_id, name, description, parameters, kind, http_url, sql_function, transfer_to, timeout_ms, enabled, updated_at),
  update (name, description, parameters, kind, http_url, sql_function, transfer_to, timeout_ms, enabled, updated_at),
  delete
  on public.tenant_tools to authenticated;
grant all on public.tenant_tools, public.tenant_tool_keys, public.call_tool_calls to service_role;

create policy tenant_tools_select_own on public.tenant_tools
  for select to authenticated using (tenant_id = (select public.current_tenant_id()));
create policy tenant_tools_insert_own on public.tenant_tools
  for insert to authenticated with check (tenant_id = (select public.current_tenant_id()));
create policy tenant_tools_update_own on public.tenant_tools
  for update to authenticated
  using (tenant_id = (select public.current_tenant_id()))
  with check (tenant_id = (select public.current_tenant_id()));
create policy tenant_tools_delete_own on public.tenant_tools
  for delete to authenticated using (tenant_id = (select public.current_tenant_id()));

create policy call_tool_calls_select_own on public.call_tool_calls
  for select to authenticated using (tenant_id = (select public.current_tenant_id()));
