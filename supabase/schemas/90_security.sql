-- pulser-ops: row level security and grants, last, so that the function grants below see every
-- function the files before created. Supabase's rules: RLS on every table, nothing for anon or
-- PUBLIC, explicit grants for the rest. (The policy on storage.objects sits with its bucket in
-- 60_realtime_storage.sql.)
--
-- A new public API function is added to the list in the loop below (the service role may call
-- it) and, if operators may call it, to the operators' grant at the end.

-- ---------------------------------------------------------------------------
-- Row level security: operators see their own runs; admins and the service role see all
-- ---------------------------------------------------------------------------

alter table public.lanes enable row level security;
alter table public.sessions enable row level security;
alter table public.run_templates enable row level security;
alter table public.runs enable row level security;
alter table public.run_steps enable row level security;
alter table public.run_events enable row level security;
alter table public.artifacts enable row level security;
alter table public.spec_docs enable row level security;
alter table public.workers enable row level security;
alter table public.alerts enable row level security;
alter table public.run_template_versions enable row level security;
alter table public.session_messages enable row level security;
alter table public.run_schedules enable row level security;

-- Shared by every signed-in caller; caller_kind() refuses a token that names no user.
create policy "operators read lanes" on public.lanes for select to authenticated
  using ((select pulser_ops.caller_kind()) in ('operator', 'admin'));
create policy "operators read templates" on public.run_templates for select to authenticated
  using ((select pulser_ops.caller_kind()) in ('operator', 'admin'));
create policy "operators read template versions" on public.run_template_versions for select
  to authenticated using ((select pulser_ops.caller_kind()) in ('operator', 'admin'));
create policy "operators read workers" on public.workers for select to authenticated
  using ((select pulser_ops.caller_kind()) in ('operator', 'admin'));
create policy "operators read schedules" on public.run_schedules for select to authenticated
  using ((select pulser_ops.caller_kind()) in ('operator', 'admin'));
-- Alerts are about the fleet (lanes, workers, templates), like the workers table; the run ids an
-- incident lists open only what RLS on runs lets each operator see.
create policy "operators read alerts" on public.alerts for select to authenticated
  using ((select pulser_ops.caller_kind()) in ('operator', 'admin'));

create policy "operators read their sessions" on public.sessions for select to authenticated
  using (owner_id = (select auth.uid()) or (select pulser_ops.is_admin()));
create policy "operators read their runs" on public.runs for select to authenticated
  using (owner_id = (select auth.uid()) or (select pulser_ops.is_admin()));
create policy "operators read steps of their runs" on public.run_steps for select to authenticated
  using (exists (select 1 from public.runs r where r.id = run_id));
create policy "operators read events of their runs" on public.run_events for select to authenticated
  using (exists (select 1 from public.runs r where r.id = run_id));
create policy "operators read artifacts of their runs" on public.artifacts for select to authenticated
  using (exists (select 1 from public.runs r where r.id = run_id));
-- The sessions policy applies inside: an operator's own sessions, an admin's every one.
create policy "operators read their sessions' messages" on public.session_messages for select
  to authenticated using (exists (select 1 from public.sessions s where s.id = session_id));
-- A spec doc an operator writes (insert, or update) is theirs and in no session or one of
-- theirs. The check runs before the foreign key's, so another operator's session and one that
-- does not exist are refused alike (42501): no probing which session ids exist.
create policy "operators manage their spec docs" on public.spec_docs for all to authenticated
  using (owner_id = (select auth.uid()) or (select pulser_ops.is_admin()))
  with check ((owner_id = (select auth.uid())
               and (session_id is null
                    or exists (select 1 from public.sessions s
                               where s.id = spec_docs.session_id
                                 and s.owner_id = (select auth.uid()))))
              or (select pulser_ops.is_admin()));

-- ---------------------------------------------------------------------------
-- Grants: explicit, nothing by default (Supabase no longer auto-exposes new tables)
-- ---------------------------------------------------------------------------

revoke all on public.lanes, public.sessions, public.run_templates, public.runs, public.run_steps,
  public.run_events, public.artifacts, public.spec_docs, public.workers, public.alerts,
  public.lane_stats, public.worker_health, public.stuck_runs, public.run_template_versions,
  public.session_messages, public.run_schedules
  from public, anon, authenticated, service_role;
grant select on public.lanes, public.sessions, public.run_templates, public.runs, public.run_steps,
  public.run_events, public.artifacts, public.workers, public.alerts,
  public.lane_stats, public.worker_health, public.stuck_runs, public.run_template_versions,
  public.session_messages, public.run_schedules to authenticated;
grant select, insert, update, delete on public.spec_docs to authenticated;
grant select, insert, update, delete on public.lanes, public.sessions, public.run_templates,
  public.runs, public.run_steps, public.run_events, public.artifacts, public.spec_docs,
  public.workers, public.alerts, public.run_template_versions, public.session_messages,
  public.run_schedules
  to service_role;
grant select on public.lane_stats, public.worker_health, public.stuck_runs to service_role;
grant usage on schema pulser_ops to authenticated, service_role;
-- The compiled params schemas are read by enqueue_runs and written by the templates' trigger,
-- both as their owner: nobody else touches them.
revoke all on pulser_ops.template_params, pulser_ops.template_params_rules
  from public, anon, authenticated, service_role;
alter table pulser_ops.template_params enable row level security;
alter table pulser_ops.template_params_rules enable row level security;
-- The service role may read them (to see how a template's schema was compiled); only their
-- owner writes them.
grant select on pulser_ops.template_params, pulser_ops.template_params_rules to service_role;
create policy "service role reads compiled params" on pulser_ops.template_params
  for select to service_role using (true);
create policy "service role reads compiled params" on pulser_ops.template_params_rules
  for select to service_role using (true);
-- runs.seq's identity sequence: inserts draw from it without any privilege on it; Supabase's
-- default privileges would give it to anon and authenticated.
revoke all on sequence public.runs_seq_seq from public, anon, authenticated, service_role;

do $$
declare
  f regprocedure;
begin
  -- Functions are executable by PUBLIC by default, and Supabase's default privileges add
  -- anon/authenticated/service_role: take all of that away, then grant exactly.
  for f in select p.oid::regprocedure from pg_catalog.pg_proc p
           join pg_catalog.pg_namespace n on n.oid = p.pronamespace
           where n.nspname = 'pulser_ops'
              or (n.nspname = 'public' and p.proname in (
                'enqueue_run', 'enqueue_runs', 'claim_runs', 'heartbeat_run', 'heartbeat_runs',
                'cancel_run', 'complete_run', 'complete_runs', 'release_run', 'append_run_events',
                'record_run_step', 'put_artifact', 'sweep_expired_runs', 'upsert_template',
                'upsert_templates', 'set_lane', 'create_session', 'register_worker',
                'deregister_worker', 'prune_runs', 'get_run', 'list_runs', 'list_run_events',
                'list_run_steps', 'list_artifacts', 'get_artifact', 'list_templates',
                'get_template', 'list_lanes', 'list_sessions', 'list_workers',
                'runs_changed_since', 'get_runs', 'get_lane_stats', 'get_worker_health',
                'list_stuck_runs', 'delete_runs', 'control_plane_info', 'list_held_runs',
                'search_runs', 'count_runs', 'board_snapshot', 'rerun_run', 'bulk_cancel_runs',
                'bulk_rerun_runs', 'delete_session', 'put_spec_docs', 'list_spec_docs', 'fleet_metrics',
                'performance_stats', 'evaluate_alerts', 'list_alerts', 'validate_template',
                'validate_params', 'list_template_summaries', 'get_template_version',
                'list_template_versions', 'delete_template', 'add_session_messages',
                'list_session_messages', 'list_session_summaries', 'list_session_runs',
                'list_run_timeline', 'list_last_run_events', 'get_run_on_behalf_of', 'run_now',
                'bulk_run_now', 'preview_schedule', 'upsert_schedule', 'upsert_schedules',
                'set_schedule_enabled',
                'delete_schedule', 'list_schedules', 'get_schedule',
                'enqueue_due_schedules'))
  loop
    execute format('revoke all on function %s from public, anon, authenticated, service_role', f);
    -- The service role (workers, sweeper) may call every one of them.
    execute format('grant execute on function %s to service_role', f);
  end loop;
end
$$;

-- Operators (and admins): their own runs, through the checked implementations.
grant execute on function
  public.enqueue_run(text, jsonb, text, integer, timestamptz, text, uuid, integer),
  public.enqueue_runs(jsonb), public.cancel_run(uuid, text), public.append_run_events(jsonb),
  public.upsert_template(jsonb), public.upsert_templates(jsonb),
  public.set_lane(text, boolean, integer, boolean),
  public.create_session(text, jsonb), public.delete_session(uuid), public.prune_runs(numeric, integer),
  public.get_run(uuid),
  public.list_runs(text[], text[], text, uuid, timestamptz, timestamptz, boolean, integer, uuid),
  public.list_run_events(uuid, bigint, integer), public.list_run_steps(uuid),
  public.list_artifacts(uuid), public.get_artifact(uuid, text, integer), public.list_templates(),
  public.get_template(text), public.list_lanes(), public.list_sessions(integer),
  public.list_workers(), public.runs_changed_since(timestamptz, text[], integer, uuid),
  public.get_runs(uuid[]), public.get_lane_stats(), public.get_worker_health(),
  public.list_stuck_runs(integer), public.delete_runs(uuid[]), public.control_plane_info(),
  public.list_spec_docs(uuid, uuid, integer),
  pulser_ops.delete_runs(uuid[]), pulser_ops.control_plane_info(),
  pulser_ops.enqueue_runs(jsonb), pulser_ops.cancel_run(uuid, text),
  pulser_ops.append_run_events(jsonb), pulser_ops.upsert_template(jsonb),
  pulser_ops.set_lane(text, boolean, integer, boolean), pulser_ops.create_session(text, jsonb),
  pulser_ops.prune_runs(numeric, integer), pulser_ops.delete_session(uuid),
  pulser_ops.caller_kind(), pulser_ops.is_admin(), pulser_ops.check_caller(),
  -- the control room (55_control_room.sql): invoker functions, so RLS decides what each sees
  public.search_runs(jsonb, integer), public.count_runs(jsonb, integer),
  public.board_snapshot(integer), public.rerun_run(uuid, jsonb, text),
  public.bulk_cancel_runs(uuid[], jsonb, integer, boolean, text),
  public.bulk_rerun_runs(uuid[], jsonb, integer, boolean),
  public.run_now(uuid), public.bulk_run_now(uuid[], jsonb, integer, boolean),
  pulser_ops.run_now(uuid),
  pulser_ops.runs_where(jsonb), pulser_ops.estimate_rows(text), pulser_ops.rerun(uuid, jsonb, text),
  pulser_ops.bulk_candidates(uuid[], jsonb, text, integer),
  pulser_ops.bulk_runs(text, uuid[], jsonb, integer, boolean, text),
  -- monitoring (57_monitoring.sql): invoker reads, so an operator sees their own runs' numbers;
  -- evaluate_alerts stays with the service role (it writes incidents and events)
  public.fleet_metrics(integer, numeric, integer), public.performance_stats(text, integer, integer),
  public.list_alerts(text, integer), pulser_ops.lane_queues(integer),
  pulser_ops.runs_rows_estimate(), pulser_ops.worker_beat(jsonb), pulser_ops.metrics_read_budget(),
  pulser_ops.require_between(numeric, text, numeric, numeric),
  pulser_ops.percentiles(double precision[]),
  -- the template editor (40_templates_lanes_workers.sql): validation is pure and writes nothing
  public.validate_template(jsonb), public.validate_params(text, jsonb),
  public.list_template_summaries(), public.get_template_version(text, integer),
  public.list_template_versions(text, integer), public.delete_template(text),
  pulser_ops.delete_template(text), pulser_ops.template_problems(jsonb),
  pulser_ops.schema_problem(jsonb, text), pulser_ops.schema_violation(jsonb, jsonb, text),
  pulser_ops.json_type_matches(jsonb, text), pulser_ops.params_with_defaults(jsonb, jsonb),
  -- sessions as conversations (the Chat tab)
  public.add_session_messages(uuid, jsonb), pulser_ops.add_session_messages(uuid, jsonb),
  public.list_session_messages(uuid, bigint, integer), public.list_session_summaries(integer),
  public.list_session_runs(uuid, integer),
  -- the run detail's attempts timeline
  public.list_run_timeline(uuid, integer), public.list_last_run_events(uuid, integer),
  -- schedules (45_schedules.sql): every operator reads and previews, admins write
  public.list_schedules(), public.get_schedule(text),
  public.preview_schedule(text, text, integer),
  public.upsert_schedule(jsonb), public.upsert_schedules(jsonb),
  public.set_schedule_enabled(text, boolean), public.delete_schedule(text),
  pulser_ops.upsert_schedule(jsonb),
  pulser_ops.set_schedule_enabled(text, boolean), pulser_ops.delete_schedule(text),
  pulser_ops.cron_field(text, integer, integer, text[], text),
  pulser_ops.cron_next(text, text, timestamptz), pulser_ops.cron_expand(text),
  pulser_ops.check_timezone(text)
  to authenticated, service_role;
