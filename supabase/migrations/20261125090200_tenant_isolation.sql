-- Row-level security: each authenticated user sees only their tenant's rows.
--
-- The tenant comes from the JWT through auth.jwt() (PostgREST >= 12 sets only request.jwt.claims):
-- the top-level tenant_id claim (a custom access-token hook) or app_metadata.tenant_id (writable
-- only by the service role). Never user_metadata: users can edit it. A missing or malformed claim
-- yields null, which matches no row, instead of raising.
create or replace function public.current_tenant_id() returns uuid
language sql stable
set search_path = ''
as $$
  select case
    when claim ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then claim::uuid
  end
  from (
    select case
      when jsonb_typeof(jwt -> 'tenant_id') = 'string' then jwt ->> 'tenant_id'
      when jsonb_typeof(jwt -> 'app_metadata' -> 'tenant_id') = 'string' then jwt -> 'app_metadata' ->> 'tenant_id'
    end as claim
    -- auth.jwt() parses the claims setting on every call: call it once.
    from (select auth.jwt() as jwt) as request
  ) as claims
$$;

revoke all on function public.current_tenant_id() from public, anon;
grant execute on function public.current_tenant_id() to authenticated, service_role;

alter table public.tenants enable row level security;
alter table public.tenant_phone_numbers enable row level security;
alter table public.tenant_agents enable row level security;
alter table public.calls enable row level security;
alter table public.call_turns enable row level security;

-- Supabase's default privileges grant everything to anon and authenticated; start from nothing.
revoke all on public.tenants, public.tenant_phone_numbers, public.tenant_agents, public.calls,
  public.call_turns from anon, authenticated;
grant select on public.tenants, public.tenant_phone_numbers, public.tenant_agents, public.calls,
  public.call_turns to authenticated;
grant insert (tenant_id, instructions, voice, greeting, model, transcription_model, turn_detection, updated_at),
  update (instructions, voice, greeting, model, transcription_model, turn_detection, updated_at)
  on public.tenant_agents to authenticated;
grant all on public.tenants, public.tenant_phone_numbers, public.tenant_agents, public.calls,
  public.call_turns to service_role;

-- Policies call the function as (select ...) so Postgres runs it once per statement (an
-- InitPlan), not once per row.
create policy tenants_select_own on public.tenants
  for select to authenticated using (id = (select public.current_tenant_id()));

create policy tenant_phone_numbers_select_own on public.tenant_phone_numbers
  for select to authenticated using (tenant_id = (select public.current_tenant_id()));

create policy tenant_agents_select_own on public.tenant_agents
  for select to authenticated using (tenant_id = (select public.current_tenant_id()));
create policy tenant_agents_insert_own on public.tenant_agents
  for insert to authenticated with check (tenant_id = (select public.current_tenant_id()));
create policy tenant_agents_update_own on public.tenant_agents
  for update to authenticated
  using (tenant_id = (select public.current_tenant_id()))
  with check (tenant_id = (select public.current_tenant_id()));

create policy calls_select_own on public.calls
  for select to authenticated using (tenant_id = (select public.current_tenant_id()));

create policy call_turns_select_own on public.call_turns
  for select to authenticated using (tenant_id = (select public.current_tenant_id()));
