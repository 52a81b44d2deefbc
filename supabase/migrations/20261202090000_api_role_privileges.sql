-- anon and authenticated hold exactly what the API needs, on every kind of object.
--
-- Supabase's default privileges give both API roles everything on each new table, sequence and
-- function in public. 20261125090200 revoked the tables, but the identity sequence behind
-- call_turns.id kept USAGE/SELECT/UPDATE: an authenticated user could setval() it to its maximum,
-- and every later insert of every tenant's turns then failed (2200H, which the turn store treats
-- as permanent). Only the service role (the bridge) ever inserts rows, so nobody else needs a
-- sequence or a function of ours besides current_tenant_id(), which the policies call.
revoke all on all sequences in schema public from anon, authenticated, public;
revoke all on all functions in schema public from anon, authenticated, public;
grant execute on function public.current_tenant_id() to authenticated, service_role;

-- The same for objects later migrations create: the role running migrations (postgres on hosted
-- projects) stops granting them to the API roles by default; a migration grants what it means to.
alter default privileges in schema public revoke all on tables from anon, authenticated;
alter default privileges in schema public revoke all on sequences from anon, authenticated;
alter default privileges in schema public revoke all on functions from anon, authenticated;
