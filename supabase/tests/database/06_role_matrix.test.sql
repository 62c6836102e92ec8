-- The role matrix, generated from the catalog: every function in public and pulser_ops, and
-- every table and view in public, is called, read and written as every kind of caller: anon,
-- two operators, an admin, the service role, and tokens that are forged or do not match (no
-- "sub", a "sub" that is no user id, claims that say another role than the one in force).
--
-- The functions and tables are listed from pg_proc and pg_class, not by hand; what is written
-- here is only their classification (who may call a function; whose rows a table shows), and
-- the first tests fail as soon as a function or table exists that is not classified, so a new
-- one cannot be missed. Each call runs with NULL for every argument (type checks, caller
-- checks and "not found" come before anything is done) inside a subtransaction that is always
-- rolled back, so no call changes what the next one sees.
begin;
select * from no_plan();

-- ---------------------------------------------------------------------------------------------
-- The classification
-- ---------------------------------------------------------------------------------------------

-- who: operator  any signed-in operator may call it (RLS and ownership decide what it touches)
--      admin     authenticated may execute it, but only admins (and the service role) pass
--      service   the service role only (workers, the sweeper, and the helpers the SECURITY
--                DEFINER functions call as their owner)
--      trigger   a trigger function
--      pure      authenticated may execute it (the security-invoker functions call it with the
--                caller's rights), and it refuses nobody: it computes from its arguments, or
--                from the catalog alone, and reads no row of any table
create temp table fn_class (fn text primary key, who text not null
  check (who in ('operator', 'admin', 'service', 'trigger', 'pure')));
insert into fn_class values
  ('public.append_run_events(jsonb)', 'operator'),
  ('public.board_snapshot(integer)', 'operator'),
  ('public.bulk_cancel_runs(uuid[], jsonb, integer, boolean, text)', 'operator'),
  ('public.bulk_rerun_runs(uuid[], jsonb, integer, boolean)', 'operator'),
  ('public.cancel_run(uuid, text)', 'operator'),
  ('public.run_now(uuid)', 'operator'),
  ('public.bulk_run_now(uuid[], jsonb, integer, boolean)', 'operator'),
  ('public.claim_runs(text, text[], integer, integer)', 'service'),
  ('public.complete_run(uuid, text, integer, text, jsonb, text, text, boolean)', 'service'),
  ('public.complete_runs(text, jsonb)', 'service'),
  ('public.get_run_on_behalf_of(uuid, uuid)', 'service'),
  ('public.control_plane_info()', 'operator'),
  ('public.count_runs(jsonb, integer)', 'operator'),
  ('public.create_session(text, jsonb)', 'operator'),
  ('public.delete_runs(uuid[])', 'admin'),
  ('public.delete_session(uuid)', 'operator'),
  ('public.deregister_worker(text, text)', 'service'),
  ('public.enqueue_run(text, jsonb, text, integer, timestamp with time zone, text, uuid, integer)', 'operator'),
  ('public.enqueue_runs(jsonb)', 'operator'),
  ('public.evaluate_alerts(jsonb)', 'service'),
  ('public.fleet_metrics(integer, numeric, integer)', 'operator'),
  ('public.add_session_messages(uuid, jsonb)', 'operator'),
  ('public.delete_template(text)', 'admin'),
  ('public.get_artifact(uuid, text, integer)', 'operator'),
  ('public.get_template_version(text, integer)', 'operator'),
  ('public.list_last_run_events(uuid, integer)', 'operator'),
  ('public.list_run_timeline(uuid, integer)', 'operator'),
  ('public.list_session_messages(uuid, bigint, integer)', 'operator'),
  ('public.list_session_runs(uuid, integer)', 'operator'),
  ('public.list_session_summaries(integer)', 'operator'),
  ('public.list_template_summaries()', 'operator'),
  ('public.list_template_versions(text, integer)', 'operator'),
  ('public.validate_params(text, jsonb)', 'operator'),
  ('public.validate_template(jsonb)', 'operator'),
  ('public.get_lane_stats()', 'operator'),
  ('public.get_run(uuid)', 'operator'),
  ('public.get_runs(uuid[])', 'operator'),
  ('public.get_template(text)', 'operator'),
  ('public.get_worker_health()', 'operator'),
  ('public.heartbeat_run(uuid, text, integer, integer)', 'service'),
  ('public.heartbeat_runs(text, jsonb)', 'service'),
  ('public.list_alerts(text, integer)', 'operator'),
  ('public.list_artifacts(uuid)', 'operator'),
  ('public.list_held_runs(text)', 'service'),
  ('public.list_lanes()', 'operator'),
  ('public.list_run_events(uuid, bigint, integer)', 'operator'),
  ('public.list_run_steps(uuid)', 'operator'),
  ('public.list_runs(text[], text[], text, uuid, timestamp with time zone, timestamp with time zone, boolean, integer, uuid)', 'operator'),
  ('public.list_sessions(integer)', 'operator'),
  ('public.list_spec_docs(uuid, uuid, integer)', 'operator'),
  ('public.list_stuck_runs(integer)', 'operator'),
  ('public.list_templates()', 'operator'),
  ('public.list_workers()', 'operator'),
  ('public.performance_stats(text, integer, integer)', 'operator'),
  ('public.prune_runs(numeric, integer)', 'admin'),
  ('public.put_artifact(uuid, text, text, text, text, text, bigint, text, jsonb, integer)', 'service'),
  ('public.put_spec_docs(uuid, text, integer, jsonb)', 'service'),
  ('public.record_run_step(uuid, text, integer, integer, text, text, text, integer, text, jsonb)', 'service'),
  ('public.register_worker(text, text, integer, text[], text, integer, jsonb)', 'service'),
  ('public.release_run(uuid, text, integer, text)', 'service'),
  ('public.rerun_run(uuid, jsonb, text)', 'operator'),
  ('public.runs_changed_since(timestamp with time zone, text[], integer, uuid)', 'operator'),
  ('public.search_runs(jsonb, integer)', 'operator'),
  ('public.set_lane(text, boolean, integer, boolean)', 'admin'),
  ('public.sweep_expired_runs(integer)', 'service'),
  ('public.upsert_template(jsonb)', 'admin'),
  ('public.upsert_templates(jsonb)', 'admin'),
  -- pulser_ops: the SECURITY DEFINER implementations behind the public writers, and the
  -- helpers the security-invoker functions call with the caller's rights
  ('pulser_ops.add_session_messages(uuid, jsonb)', 'operator'),
  ('pulser_ops.append_run_events(jsonb)', 'operator'),
  ('pulser_ops.bulk_candidates(uuid[], jsonb, text, integer)', 'operator'),
  ('pulser_ops.bulk_runs(text, uuid[], jsonb, integer, boolean, text)', 'operator'),
  ('pulser_ops.caller_kind()', 'operator'),
  ('pulser_ops.cancel_run(uuid, text)', 'operator'),
  ('pulser_ops.run_now(uuid)', 'operator'),
  ('pulser_ops.check_caller()', 'operator'),
  ('pulser_ops.control_plane_info()', 'operator'),
  ('pulser_ops.create_session(text, jsonb)', 'operator'),
  ('pulser_ops.delete_session(uuid)', 'operator'),
  ('pulser_ops.enqueue_runs(jsonb)', 'operator'),
  ('pulser_ops.estimate_rows(text)', 'operator'),
  ('pulser_ops.is_admin()', 'operator'),
  ('pulser_ops.lane_queues(integer)', 'operator'),
  ('pulser_ops.rerun(uuid, jsonb, text)', 'operator'),
  ('pulser_ops.runs_where(jsonb)', 'operator'),
  ('pulser_ops.delete_runs(uuid[])', 'admin'),
  ('pulser_ops.delete_template(text)', 'admin'),
  ('pulser_ops.prune_runs(numeric, integer)', 'admin'),
  ('pulser_ops.set_lane(text, boolean, integer, boolean)', 'admin'),
  ('pulser_ops.upsert_template(jsonb)', 'admin'),
  ('pulser_ops.add_event(uuid, text, text, text, jsonb, integer, text)', 'service'),
  ('pulser_ops.alert_conditions(jsonb)', 'service'),
  ('pulser_ops.alert_events(alerts, text)', 'service'),
  ('pulser_ops.rule(jsonb, text)', 'service'),
  ('pulser_ops.rule_number(jsonb, text, text, numeric, numeric)', 'service'),
  ('pulser_ops.artifact_name_problem(text)', 'service'),
  ('pulser_ops.complete_runs(text, jsonb)', 'service'),
  ('pulser_ops.completion_problem(text, jsonb)', 'service'),
  ('pulser_ops.event_batch(jsonb)', 'service'),
  ('pulser_ops.enqueue_refuse(jsonb, pulser_ops.enqueue_item)', 'service'),
  ('pulser_ops.lock_run_for(uuid, text)', 'service'),
  ('pulser_ops.notify_deleted(text, text[])', 'service'),
  ('pulser_ops.params_break_rules(text, jsonb)', 'service'),
  ('pulser_ops.raise_fenced(uuid, text, integer, text)', 'service'),
  ('pulser_ops.require_admin(text)', 'service'),
  ('pulser_ops.require_service(text)', 'service'),
  ('pulser_ops.schema_rules(jsonb, text[])', 'service'),
  ('pulser_ops.template_definition(run_templates)', 'service'),
  ('pulser_ops.try_timestamptz(text)', 'service'),
  ('pulser_ops.try_uuid(text)', 'service'),
  ('pulser_ops.storage_key(text)', 'service'),
  ('pulser_ops.percentiles(double precision[])', 'pure'),
  -- schedules: cron arithmetic is pure; reading is every operator's, writing an admin's
  ('public.preview_schedule(text, text, integer)', 'pure'),
  ('pulser_ops.cron_field(text, integer, integer, text[], text)', 'pure'),
  ('pulser_ops.cron_next(text, text, timestamp with time zone)', 'pure'),
  ('pulser_ops.cron_expand(text)', 'pure'),
  ('pulser_ops.check_timezone(text)', 'pure'),
  ('public.list_schedules()', 'operator'),
  ('public.get_schedule(text)', 'operator'),
  ('public.upsert_schedule(jsonb)', 'admin'),
  ('public.upsert_schedules(jsonb)', 'admin'),
  ('public.set_schedule_enabled(text, boolean)', 'admin'),
  ('public.delete_schedule(text)', 'admin'),
  ('pulser_ops.upsert_schedule(jsonb)', 'admin'),
  ('pulser_ops.set_schedule_enabled(text, boolean)', 'admin'),
  ('pulser_ops.delete_schedule(text)', 'admin'),
  ('public.enqueue_due_schedules(integer)', 'service'),
  -- the checks of templates and params (validate_template and validate_params are invokers)
  ('pulser_ops.json_type_matches(jsonb, text)', 'pure'),
  ('pulser_ops.params_with_defaults(jsonb, jsonb)', 'pure'),
  ('pulser_ops.schema_problem(jsonb, text)', 'pure'),
  ('pulser_ops.schema_violation(jsonb, jsonb, text)', 'pure'),
  ('pulser_ops.template_problems(jsonb)', 'pure'),
  ('pulser_ops.require_between(numeric, text, numeric, numeric)', 'pure'),
  ('pulser_ops.runs_rows_estimate()', 'pure'),
  ('pulser_ops.worker_beat(jsonb)', 'pure'),
  ('pulser_ops.metrics_read_budget()', 'pure'),
  ('pulser_ops.run_children_notify()', 'trigger'),
  ('pulser_ops.run_templates_compile()', 'trigger'),
  ('pulser_ops.runs_notify()', 'trigger'),
  ('pulser_ops.runs_notify_delete()', 'trigger'),
  ('pulser_ops.runs_refuse()', 'trigger'),
  ('pulser_ops.runs_stamp()', 'trigger'),
  ('pulser_ops.record_template_version()', 'trigger'),
  ('pulser_ops.template_versioning()', 'trigger'),
  ('pulser_ops.workers_notify()', 'trigger');

-- reads: shared  every signed-in operator sees every row (reference data, or counts under RLS)
--        own     an operator sees the rows for which `mine` holds ($1 is the operator's id);
--                admins and the service role see every row
--        service the control plane's own (pulser_ops): only the service role reads it, everyone
--                else is refused
-- writable: which callers other than the service role may insert, update or delete rows
create temp table table_class (tbl text primary key, reads text not null check (reads in ('shared', 'own', 'service')),
  mine text, writable text not null default 'nobody' check (writable in ('nobody', 'own')));
insert into table_class values
  ('public.lanes', 'shared', null, 'nobody'),
  ('public.run_templates', 'shared', null, 'nobody'),
  ('public.run_template_versions', 'shared', null, 'nobody'),
  ('public.workers', 'shared', null, 'nobody'),
  ('public.lane_stats', 'shared', null, 'nobody'),
  ('public.worker_health', 'shared', null, 'nobody'),
  ('public.alerts', 'shared', null, 'nobody'),
  ('public.run_schedules', 'shared', null, 'nobody'),
  ('public.sessions', 'own', 'owner_id = $1', 'nobody'),
  ('public.runs', 'own', 'owner_id = $1', 'nobody'),
  ('public.run_steps', 'own', 'run_id in (select r.id from public.runs r where r.owner_id = $1)', 'nobody'),
  ('public.run_events', 'own', 'run_id in (select r.id from public.runs r where r.owner_id = $1)', 'nobody'),
  ('public.artifacts', 'own', 'run_id in (select r.id from public.runs r where r.owner_id = $1)', 'nobody'),
  ('public.stuck_runs', 'own', 'id in (select r.id from public.runs r where r.owner_id = $1)', 'nobody'),
  ('public.spec_docs', 'own', 'owner_id = $1', 'own'),
  ('public.session_messages', 'own', 'session_id in (select s.id from public.sessions s where s.owner_id = $1)', 'nobody'),
  ('pulser_ops.template_params', 'service', null, 'nobody'),
  ('pulser_ops.template_params_rules', 'service', null, 'nobody');

-- acts_as: what the control plane must take the caller for (nobody: refused everywhere)
create temp table identity (name text primary key, role text not null, claims jsonb, acts_as text not null,
  uid uuid);
insert into identity values
  ('anon', 'anon', '{"role": "anon"}', 'anon', null),
  ('alice', 'authenticated', '{"role": "authenticated", "sub": "a0000000-0000-4000-8000-00000000000a"}', 'operator',
   'a0000000-0000-4000-8000-00000000000a'),
  ('bob', 'authenticated', '{"role": "authenticated", "sub": "b0000000-0000-4000-8000-00000000000b"}', 'operator',
   'b0000000-0000-4000-8000-00000000000b'),
  ('admin', 'authenticated', '{"role": "authenticated", "sub": "c0000000-0000-4000-8000-00000000000c", "app_metadata": {"ops_role": "admin"}}',
   'admin', 'c0000000-0000-4000-8000-00000000000c'),
  ('service_role', 'service_role', '{"role": "service_role"}', 'service', null),
  -- forged or mismatched tokens
  ('no sub', 'authenticated', '{"role": "authenticated"}', 'nobody', null),
  ('no claims', 'authenticated', null, 'nobody', null),
  ('empty sub', 'authenticated', '{"role": "authenticated", "sub": ""}', 'nobody', null),
  ('sub not a user id', 'authenticated', '{"role": "authenticated", "sub": "service_role"}', 'nobody', null),
  ('admin without sub', 'authenticated', '{"role": "authenticated", "app_metadata": {"ops_role": "admin"}}', 'nobody', null),
  ('claims say service_role', 'authenticated', '{"role": "service_role", "sub": "d0000000-0000-4000-8000-00000000000d"}',
   'operator', 'd0000000-0000-4000-8000-00000000000d'),
  ('user_metadata admin', 'authenticated', '{"role": "authenticated", "sub": "d0000000-0000-4000-8000-00000000000d", "user_metadata": {"ops_role": "admin"}}',
   'operator', 'd0000000-0000-4000-8000-00000000000d'),
  ('anon role with a user''s claims', 'anon', '{"role": "authenticated", "sub": "a0000000-0000-4000-8000-00000000000a"}',
   'anon', null);

-- ---------------------------------------------------------------------------------------------
-- Nothing unclassified
-- ---------------------------------------------------------------------------------------------

create temp view our_functions as
select p.oid, n.nspname || '.' || p.proname || '(' || oidvectortypes(p.proargtypes) || ')' as fn,
       p.prorettype = 'trigger'::regtype as is_trigger
from pg_proc p join pg_namespace n on n.oid = p.pronamespace
where n.nspname in ('public', 'pulser_ops') and p.prokind in ('f', 'p')
  and not exists (select 1 from pg_depend d where d.objid = p.oid and d.deptype = 'e');

create temp view our_tables as
select c.oid, n.nspname || '.' || c.relname as tbl
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname in ('public', 'pulser_ops') and c.relkind in ('r', 'p', 'v', 'm', 'f')
  and not exists (select 1 from pg_depend d where d.objid = c.oid and d.deptype = 'e');

select is((select array_agg(fn order by fn) from our_functions where fn not in (select fn from fn_class)),
  null, 'every function in public and pulser_ops is classified in this matrix');
select is((select array_agg(fn order by fn) from fn_class where fn not in (select fn from our_functions)),
  null, 'the matrix names no function that does not exist');
select is((select array_agg(tbl order by tbl) from our_tables where tbl not in (select tbl from table_class)),
  null, 'every table and view in public and pulser_ops is classified in this matrix');
select is((select array_agg(tbl order by tbl) from table_class where tbl not in (select tbl from our_tables)),
  null, 'the matrix names no table that does not exist');
select is((select array_agg(fn order by fn) from our_functions f join fn_class c using (fn)
            where f.is_trigger <> (c.who = 'trigger')),
  null, 'exactly the trigger functions are classified as triggers');

-- ---------------------------------------------------------------------------------------------
-- Grants follow the classification
-- ---------------------------------------------------------------------------------------------

select is((select array_agg(f.fn order by f.fn) from our_functions f
            where has_function_privilege('anon', f.oid, 'execute')
               or exists (select 1 from pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                          where p.oid = f.oid and a.grantee = 0 and a.privilege_type = 'EXECUTE')),
  null, 'no function in public or pulser_ops is executable by anon or PUBLIC');
select is((select array_agg(f.fn order by f.fn) from our_functions f join fn_class c using (fn)
            where has_function_privilege('authenticated', f.oid, 'execute') <> (c.who in ('operator', 'admin', 'pure'))),
  null, 'authenticated may execute exactly the operator, admin and pure functions');
select is((select array_agg(f.fn order by f.fn) from our_functions f join fn_class c using (fn)
            where c.who <> 'trigger' and not has_function_privilege('service_role', f.oid, 'execute')),
  null, 'the service role may execute every function but the triggers');
select is((select array_agg(t.tbl order by t.tbl) from our_tables t
            where has_table_privilege('anon', t.oid, 'select') or has_table_privilege('anon', t.oid, 'insert')
               or has_table_privilege('anon', t.oid, 'update') or has_table_privilege('anon', t.oid, 'delete')),
  null, 'anon has no privilege on any table or view');
select is((select array_agg(c.relname::text order by 1) from pg_class c join pg_namespace n on n.oid = c.relnamespace
            where n.nspname in ('public', 'pulser_ops') and c.relkind = 'S'
              and (has_sequence_privilege('anon', c.oid, 'usage') or has_sequence_privilege('authenticated', c.oid, 'usage')
                   or has_sequence_privilege('anon', c.oid, 'select') or has_sequence_privilege('authenticated', c.oid, 'select'))),
  null, 'anon and authenticated have no privilege on any sequence');

-- ---------------------------------------------------------------------------------------------
-- A world with rows of every kind for alice, bob and the service role
-- ---------------------------------------------------------------------------------------------

select public.upsert_template('{"name": "t-matrix", "default_lane": "B", "max_attempts": 3}'::jsonb);
select public.upsert_schedule('{"name": "s-matrix", "template": "t-matrix", "cron": "@hourly"}'::jsonb);
update public.lanes set paused = (id <> 'B');
select public.register_worker('w-matrix', lanes => '{B}');
do $$
declare
  who record;
  s uuid;
  r public.runs;
begin
  for who in select * from identity where name in ('alice', 'bob', 'service_role') loop
    perform set_config('role', who.role, true);
    perform set_config('request.jwt.claims', who.claims::text, true);
    select id into s from public.create_session(who.name || '''s session');
    perform public.enqueue_run('t-matrix', session_id => s);
    perform public.add_session_messages(s, '[{"kind": "command", "body": "status"}]');
    perform public.enqueue_run('t-matrix', idempotency_key => 'shared key');
    perform set_config('role', 'postgres', true);
    insert into public.spec_docs (session_id, owner_id, title)
      select s, who.uid, who.name || '''s doc';
  end loop;
  -- one run of each claimed, with a step, events and artifacts
  for r in select * from public.claim_runs('w-matrix', '{B}', 10, 60) loop
    perform public.record_run_step(r.id, 'w-matrix', 1, 0, 'step', 'shell', 'running');
    perform public.append_run_events(jsonb_build_array(jsonb_build_object('run_id', r.id, 'kind', 'log')));
    perform public.put_artifact(r.id, 'note.txt', inline_text => 'hi');
  end loop;
  insert into public.alerts (rule, subject, summary) values ('stuck_runs', 'B', 'a stuck run');
  -- stuck runs (every caller has some): expired leases
  update public.runs set lease_expires_at = now() - interval '1 minute' where status = 'running';
end
$$;
select ok((select count(distinct owner_id) from public.runs) = 2 and exists (select 1 from public.runs where owner_id is null),
  'the world has runs of alice, bob and the service role');

-- ---------------------------------------------------------------------------------------------
-- Every function as every caller
-- ---------------------------------------------------------------------------------------------

create temp table outcome (who text, fn text, state text);
do $$
declare
  i record;
  f record;
  n bigint;
begin
  for i in select * from identity loop
    for f in select o.fn, o.oid,
                    (select coalesce(string_agg(format('null::%s', t::regtype), ', ' order by k), '')
                       from unnest(p.proargtypes) with ordinality as a(t, k)) as args,
                    n.nspname, p.proname
               from our_functions o join pg_proc p on p.oid = o.oid
               join pg_namespace n on n.oid = p.pronamespace loop
      begin
        perform set_config('role', i.role, true);
        perform set_config('request.jwt.claims', coalesce(i.claims::text, ''), true);
        execute format('select count(*) from %I.%I(%s) as x', f.nspname, f.proname, f.args) into n;
        raise exception using errcode = 'PT200', message = 'done (rolled back)';
      exception when others then
        insert into outcome values (i.name, f.fn, sqlstate);
      end;
    end loop;
  end loop;
end
$$;

select is((select count(*)::int from outcome), (select count(*)::int from identity) * (select count(*)::int from our_functions),
  'every function was called as every caller');
select is((select array_agg(o.who || ': ' || o.fn || ' -> ' || o.state order by 1) from outcome o
            join identity i on i.name = o.who join fn_class c on c.fn = o.fn
            where c.who not in ('trigger', 'pure') and i.acts_as in ('anon', 'nobody') and o.state <> '42501'),
  null, 'anon and every forged or user-less token are refused (42501) by every function that is not pure');
select is((select array_agg(o.who || ': ' || o.fn || ' -> ' || o.state order by 1) from outcome o
            join identity i on i.name = o.who join fn_class c on c.fn = o.fn
            where c.who = 'pure' and i.acts_as = 'anon' and o.state <> '42501'),
  null, 'anon cannot call even the pure functions');
select is((select array_agg(o.who || ': ' || o.fn || ' -> ' || o.state order by 1) from outcome o
            join identity i on i.name = o.who join fn_class c on c.fn = o.fn
            where c.who not in ('trigger', 'pure')
              and ((o.state = '42501') <> case i.acts_as when 'operator' then c.who in ('admin', 'service')
                                                         when 'admin' then c.who = 'service'
                                                         else c.who not in ('operator', 'admin', 'service') end)
              and i.acts_as in ('operator', 'admin', 'service')),
  null, 'operators, admins and the service role are refused (42501) exactly where the matrix says');
select is((select array_agg(o.who || ': ' || o.fn || ' -> ' || o.state order by 1) from outcome o
            join fn_class c on c.fn = o.fn where c.who = 'trigger' and o.state = 'PT200'),
  null, 'no caller can call a trigger function');

-- The refusal says why.
set local role authenticated;
select set_config('request.jwt.claims', '{"role": "authenticated", "email": "x@example.com"}', true);
select throws_ok($$select * from public.list_templates()$$, '42501',
  'permission denied: the access token names no user (its JWT has no user id in "sub")',
  'a token without "sub" is told why it is refused');
select throws_ok($$select * from public.enqueue_run('t-matrix', idempotency_key => 'shared key')$$, '42501', null,
  'it does not get the service role''s run for a shared idempotency key');
reset role;

-- ---------------------------------------------------------------------------------------------
-- Every table and view as every caller: what it shows, and that it cannot be written
-- ---------------------------------------------------------------------------------------------

create temp table seen (who text, tbl text, action text, state text, rows bigint, expected bigint,
  foreign_rows bigint);
do $$
declare
  i record;
  t record;
  n bigint;
  foreign_n bigint;
  want bigint;
  first_col text;
  w text;
begin
  for i in select * from identity loop
    for t in select o.tbl, o.oid, c.reads, c.mine, c.writable from our_tables o join table_class c using (tbl) loop
      -- what the caller should see, counted as the owner of everything
      if i.acts_as in ('admin', 'service') or t.reads in ('shared', 'service') then
        execute format('select count(*) from %s', t.tbl) into want;
      elsif i.acts_as = 'operator' then
        execute format('select count(*) from %s where %s', t.tbl, t.mine) into want using i.uid;
      else
        want := 0;
      end if;
      -- read: as many rows as that, and none that is not theirs
      begin
        perform set_config('role', i.role, true);
        perform set_config('request.jwt.claims', coalesce(i.claims::text, ''), true);
        execute format('select count(*) from %s', t.tbl) into n;
        foreign_n := 0;
        if i.acts_as = 'operator' and t.reads = 'own' then
          execute format('select count(*) from %s where (%s) is not true', t.tbl, t.mine)
            into foreign_n using i.uid;
        end if;
        raise exception using errcode = 'PT200', message = n || ' ' || foreign_n;
      exception when others then
        insert into seen values (i.name, t.tbl, 'select', sqlstate,
          case when sqlstate = 'PT200' then split_part(sqlerrm, ' ', 1)::bigint end, want,
          case when sqlstate = 'PT200' then split_part(sqlerrm, ' ', 2)::bigint end);
      end;
      -- writes: insert, update, delete; only the service role, and spec docs of one's own
      select quote_ident(a.attname) into first_col from pg_attribute a
       where a.attrelid = t.oid and a.attnum > 0 and not a.attisdropped order by a.attnum limit 1;
      foreach w in array array['insert', 'update', 'delete'] loop
        begin
          perform set_config('role', i.role, true);
          perform set_config('request.jwt.claims', coalesce(i.claims::text, ''), true);
          execute case w when 'insert' then format('insert into %s default values', t.tbl)
                         when 'update' then format('update %s set %s = %2$s', t.tbl, first_col)
                         else format('delete from %s', t.tbl) end;
          get diagnostics n = row_count;
          raise exception using errcode = 'PT200', message = n::text;
        exception when others then
          insert into seen values (i.name, t.tbl, w, sqlstate,
                                   case when sqlstate = 'PT200' then sqlerrm::bigint end, null, null);
        end;
      end loop;
    end loop;
  end loop;
end
$$;

select is((select count(*)::int from seen), 4 * (select count(*)::int from identity) * (select count(*)::int from our_tables),
  'every table and view was read and written as every caller');
select is((select array_agg(s.who || ': ' || s.tbl || ' -> ' || s.state order by 1) from seen s
            join identity i on i.name = s.who
            where s.action = 'select' and i.acts_as = 'anon' and s.state <> '42501'),
  null, 'anon cannot read any table or view');
select is((select array_agg(s.who || ': ' || s.tbl || ' -> ' || coalesce(s.rows::text, s.state) order by 1) from seen s
            join identity i on i.name = s.who
            where s.action = 'select' and i.acts_as = 'nobody' and not (s.state = '42501' or s.rows = 0)),
  null, 'a forged or user-less token reads nothing from any table or view');
select is((select array_agg(s.who || ': ' || s.tbl || ' shows ' || coalesce(s.rows::text, s.state) || ', wanted ' || s.expected order by 1)
            from seen s join identity i on i.name = s.who
            join table_class c on c.tbl = s.tbl
            where s.action = 'select' and i.acts_as in ('operator', 'admin', 'service')
              and case when c.reads = 'service' and i.acts_as <> 'service' then s.state <> '42501'
                       else s.rows is distinct from s.expected or s.foreign_rows <> 0 end),
  null, 'operators see exactly their own rows (or the shared ones); admins and the service role see all; only the service role reads the control plane''s own tables');
select ok((select bool_and(s.expected > 0) from seen s where s.action = 'select' and s.who in ('alice', 'bob')),
  'alice and bob each have rows in every table and view (so the check above is not vacuous)');
select is((select array_agg(s.who || ': ' || s.action || ' ' || s.tbl || ' -> ' || coalesce(s.rows::text, s.state) order by 1)
            from seen s join identity i on i.name = s.who join table_class c on c.tbl = s.tbl
            where s.action <> 'select' and i.acts_as <> 'service' and s.state = 'PT200' and s.rows > 0
              and not (c.writable = 'own' and i.acts_as in ('operator', 'admin') and s.action <> 'insert')
              and not (c.writable = 'own' and i.acts_as = 'admin')),
  null, 'no caller but the service role writes a row, except operators and admins their spec docs');
select is((select array_agg(s.who || ': ' || s.action || ' -> ' || coalesce(s.rows::text, s.state) order by 1)
            from seen s join identity i on i.name = s.who
            where s.tbl = 'public.spec_docs' and s.action in ('update', 'delete') and i.acts_as = 'operator'
              and s.rows is distinct from (select count(*) from public.spec_docs d where d.owner_id = i.uid)),
  null, 'an operator updates and deletes exactly their own spec docs');

select * from finish();
rollback;
