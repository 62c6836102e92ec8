-- caller_kind() is a SQL function with SET search_path, so it is never inlined and is
-- parsed and planned on every call (2 calls per claim+complete). The same logic in plpgsql
-- keeps its plans cached. Applied to a scratch database only.
create or replace function pulser_ops.caller_kind() returns text
language plpgsql stable set search_path = '' as $$
declare r text := nullif(pg_catalog.current_setting('role'), 'none');
begin
  if r = 'service_role' then return 'service'; end if;
  if r = 'authenticated' then
    return case when coalesce(auth.jwt() -> 'app_metadata' ->> 'ops_role', '') = 'admin' then 'admin' else 'operator' end;
  end if;
  if r = 'anon' then return 'anon'; end if;
  if coalesce((select rolsuper from pg_catalog.pg_roles where rolname = coalesce(r, session_user)), false)
     or pg_catalog.pg_has_role(coalesce(r, session_user), 'service_role', 'USAGE') then return 'service'; end if;
  return 'none';
end $$
