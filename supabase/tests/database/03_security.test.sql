-- Supabase conventions, checked in the catalog: fixed search_path, no SECURITY DEFINER in an
-- exposed schema, nothing for anon or PUBLIC, RLS on every table, Realtime and Storage set up.
-- Objects that belong to extensions (pgTAP itself, when installed in public) are not ours.
begin;
select * from no_plan();

select is(
  (select array_agg(p.oid::regprocedure::text order by 1) from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname in ('public', 'pulser_ops') and p.prokind = 'f'
      and not exists (select 1 from pg_depend d where d.objid = p.oid and d.deptype = 'e')
      and not exists (select 1 from unnest(coalesce(p.proconfig, '{}')) c where c like 'search_path=%')),
  null, 'every function has a fixed search_path');

select is(
  (select array_agg(p.oid::regprocedure::text) from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname = 'public' and p.prosecdef),
  null, 'no SECURITY DEFINER function in the exposed public schema');

select is(
  (select array_agg(p.oid::regprocedure::text) from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname in ('public', 'pulser_ops') and p.prokind = 'f'
      and not exists (select 1 from pg_depend d where d.objid = p.oid and d.deptype = 'e')
      and (has_function_privilege('anon', p.oid, 'execute')
           or exists (select 1 from aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                      where a.grantee = 0 and a.privilege_type = 'EXECUTE'))),
  null, 'anon and PUBLIC can execute none of our functions');

select is(
  (select array_agg(c.relname::text order by 1) from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname in ('public', 'pulser_ops') and c.relkind in ('r', 'v')
      and not exists (select 1 from pg_depend d where d.objid = c.oid and d.deptype = 'e')
      and (has_table_privilege('anon', c.oid, 'select') or has_table_privilege('anon', c.oid, 'insert')
           or has_table_privilege('anon', c.oid, 'update') or has_table_privilege('anon', c.oid, 'delete'))),
  null, 'anon has no privilege on any table or view');

select is(
  (select array_agg(c.relname::text order by 1) from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname in ('public', 'pulser_ops') and c.relkind = 'r' and not c.relrowsecurity),
  null, 'RLS is enabled on every table');

select is(
  (select array_agg(c.relname::text order by 1) from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = 'public' and c.relkind = 'r'
      and not exists (select 1 from pg_policy p where p.polrelid = c.oid)),
  null, 'every public table has a policy');

select is(
  (select array_agg(c.relname::text order by 1) from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = 'public' and c.relkind = 'v'
      and not exists (select 1 from pg_depend d where d.objid = c.oid and d.deptype = 'e')
      and not coalesce('security_invoker=true' = any(c.reloptions), false)),
  null, 'every view is security_invoker');

select set_eq(
  $$select tablename::text from pg_publication_tables where pubname = 'supabase_realtime' and schemaname = 'public'$$,
  array['runs', 'run_steps', 'run_events', 'artifacts', 'workers'],
  'Realtime publishes runs, run_steps, run_events, artifacts and workers');

select is(
  (select array_agg(c.relname::text order by 1) from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = 'public' and c.relname in ('runs', 'run_steps', 'run_events', 'artifacts', 'workers')
      and c.relreplident <> 'f'),
  null, 'published tables have replica identity full (old records on UPDATE/DELETE)');

select is((select public from storage.buckets where id = 'run-artifacts'), false, 'the artifacts bucket is private');

select ok(has_function_privilege('service_role', 'public.claim_runs(text, text[], integer, integer)', 'execute'),
  'the service role may claim');
select ok(not has_function_privilege('authenticated', 'public.claim_runs(text, text[], integer, integer)', 'execute'),
  'authenticated may not claim');
select ok(has_function_privilege('authenticated', 'public.enqueue_run(text, jsonb, text, integer, timestamptz, text, uuid, integer)', 'execute'),
  'authenticated may enqueue');

select * from finish();
rollback;
